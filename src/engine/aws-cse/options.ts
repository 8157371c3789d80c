/** Turns the --aws-cse-* settings (file paths, KMS key id, --format) into AwsCseOptions. */
import { createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createKms, type KmsPort } from './kms.js';
import { WRITE_FORMATS, type AwsCseOptions, type WriteFormat } from './support.js';

export interface AwsCseSettings {
  /** Raw 16/24/32-byte AES master key file. */
  keyFile?: string;
  /** PEM RSA private key file. */
  rsaKeyFile?: string;
  kmsKeyId?: string;
  kmsEndpoint?: string;
  region?: string;
  format?: string;
  /** Tests inject a KMS. */
  kms?: KmsPort;
}

export class AwsCseConfigError extends Error {
  override readonly name = 'AwsCseConfigError';
}

/** undefined when no S3EC setting is given (the engine then only knows its own format). */
export async function loadAwsCseOptions(s: AwsCseSettings): Promise<AwsCseOptions | undefined> {
  const format = (s.format ?? 'native') as WriteFormat;
  if (!WRITE_FORMATS.includes(format)) throw new AwsCseConfigError(`--format must be one of ${WRITE_FORMATS.join(', ')}, got "${s.format}"`);
  if (!s.keyFile && !s.rsaKeyFile && !s.kmsKeyId) {
    if (format === 'aws-cse-v2') throw new AwsCseConfigError('--format aws-cse-v2 needs --aws-cse-key-file, --aws-cse-rsa-key or --aws-cse-kms-key-id');
    return undefined;
  }
  const opts: AwsCseOptions = { writeFormat: format };
  if (s.keyFile) {
    const raw = await readKey(s.keyFile, '--aws-cse-key-file');
    if (![16, 24, 32].includes(raw.length)) throw new AwsCseConfigError(`--aws-cse-key-file ${s.keyFile}: an AES key file holds 16, 24 or 32 raw bytes, this one has ${raw.length}`);
    opts.aesKey = raw;
  }
  if (s.rsaKeyFile) {
    const pem = await readKey(s.rsaKeyFile, '--aws-cse-rsa-key');
    try {
      opts.rsaKey = createPrivateKey(pem);
    } catch (err) {
      throw new AwsCseConfigError(`--aws-cse-rsa-key ${s.rsaKeyFile}: not a PEM private key (${(err as Error).message})`);
    }
    if (opts.rsaKey.asymmetricKeyType !== 'rsa') throw new AwsCseConfigError(`--aws-cse-rsa-key ${s.rsaKeyFile}: not an RSA key`);
  }
  if (s.kmsKeyId) opts.kms = { keyId: s.kmsKeyId, client: s.kms ?? createKms({ endpoint: s.kmsEndpoint, region: s.region }) };
  return opts;
}

async function readKey(file: string, flag: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    throw new AwsCseConfigError(`${flag} ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}
