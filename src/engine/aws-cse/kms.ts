/**
 * AWS KMS for the S3 Encryption Client formats (wrapping algorithms "kms" and "kms+context"), behind
 * a small port so tests can count or fail calls. The real one uses @aws-sdk/client-kms; its
 * endpoint is configurable (--aws-kms-endpoint, or AWS_ENDPOINT_URL_KMS / AWS_ENDPOINT_URL).
 */
import { DecryptCommand, GenerateDataKeyCommand, KMSClient, type KMSClientConfig } from '@aws-sdk/client-kms';
import { CseIntegrityError } from '../../format/aws-cse/index.js';

export interface KmsPort {
  /** A fresh 256-bit data key: plaintext and the KMS ciphertext blob, bound to `context`. */
  generateDataKey(keyId: string, context: Record<string, string>): Promise<{ plaintext: Buffer; ciphertext: Buffer }>;
  /** Opens a ciphertext blob; `context` must be the one it was created with. */
  decrypt(ciphertext: Buffer, context: Record<string, string>, keyId?: string): Promise<Buffer>;
  destroy?(): void;
}

export interface KmsClientOptions {
  endpoint?: string;
  region?: string;
  credentials?: KMSClientConfig['credentials'];
}

export function createKms(opts: KmsClientOptions = {}): KmsPort {
  const client = new KMSClient({
    endpoint: opts.endpoint ?? (process.env.AWS_ENDPOINT_URL_KMS || process.env.AWS_ENDPOINT_URL || undefined),
    region: opts.region ?? (process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || 'us-east-1'),
    credentials: opts.credentials,
  });
  return {
    async generateDataKey(keyId, context) {
      const out = await client.send(new GenerateDataKeyCommand({ KeyId: keyId, KeySpec: 'AES_256', EncryptionContext: context }));
      if (!out.Plaintext || !out.CiphertextBlob) throw new Error('KMS GenerateDataKey returned no key');
      return { plaintext: Buffer.from(out.Plaintext), ciphertext: Buffer.from(out.CiphertextBlob) };
    },
    async decrypt(ciphertext, context, keyId) {
      try {
        const out = await client.send(new DecryptCommand({ CiphertextBlob: ciphertext, EncryptionContext: context, KeyId: keyId }));
        if (!out.Plaintext) throw new Error('KMS Decrypt returned no plaintext');
        return Buffer.from(out.Plaintext);
      } catch (err) {
        const name = (err as { name?: string }).name;
        if (name === 'InvalidCiphertextException' || name === 'IncorrectKeyException') {
          throw new CseIntegrityError('CSE_KEY_UNWRAP_FAILED', `AWS KMS refused the data key (${name}): wrong KMS key, or the wrapped key or encryption context was modified`);
        }
        throw err;
      }
    },
    destroy: () => client.destroy(),
  };
}
