// A stand-in for AWS KMS on 127.0.0.1 (JSON 1.1 protocol: GenerateDataKey, Encrypt, Decrypt), for
// tests of the kms / kms+context wrapping with s3cryptfs, the Ruby SDK and the Go SDK. Ciphertext
// blobs are AES-256-GCM under a per-key-id secret, bound to the encryption context: a changed
// context or blob is refused with InvalidCiphertextException, like the real service.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeKms {
  endpoint: string;
  calls: Record<string, number>;
  stop(): Promise<void>;
}

function secret(keyId: string): Buffer {
  return createHash('sha256').update(`fake-kms:${keyId}`).digest();
}

function contextAad(ctx: Record<string, string> | undefined): Buffer {
  const entries = Object.entries(ctx ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return Buffer.from(JSON.stringify(entries), 'utf8');
}

function seal(keyId: string, plaintext: Buffer, ctx: Record<string, string> | undefined): Buffer {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', secret(keyId), iv);
  c.setAAD(contextAad(ctx));
  const id = Buffer.from(keyId, 'utf8');
  return Buffer.concat([Buffer.from([id.length]), id, iv, c.update(plaintext), c.final(), c.getAuthTag()]);
}

function open(blob: Buffer, ctx: Record<string, string> | undefined): { keyId: string; plaintext: Buffer } {
  const n = blob[0];
  const keyId = blob.subarray(1, 1 + n).toString('utf8');
  const iv = blob.subarray(1 + n, 13 + n);
  const body = blob.subarray(13 + n, blob.length - 16);
  const d = createDecipheriv('aes-256-gcm', secret(keyId), iv);
  d.setAAD(contextAad(ctx));
  d.setAuthTag(blob.subarray(blob.length - 16));
  return { keyId, plaintext: Buffer.concat([d.update(body), d.final()]) };
}

export async function startFakeKms(): Promise<FakeKms> {
  const calls: Record<string, number> = {};
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const op = String(req.headers['x-amz-target'] ?? '').replace(/^TrentService\./, '');
      calls[op] = (calls[op] ?? 0) + 1;
      const reply = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify(body));
      };
      const fail = (type: string, message: string) => reply(400, { __type: type, message });
      let input: Record<string, unknown>;
      try {
        input = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>;
      } catch {
        return fail('SerializationException', 'bad JSON');
      }
      const ctx = input.EncryptionContext as Record<string, string> | undefined;
      try {
        switch (op) {
          case 'GenerateDataKey': {
            const keyId = String(input.KeyId);
            const plaintext = randomBytes(input.KeySpec === 'AES_128' || input.NumberOfBytes === 16 ? 16 : 32);
            return reply(200, { KeyId: keyId, Plaintext: plaintext.toString('base64'), CiphertextBlob: seal(keyId, plaintext, ctx).toString('base64') });
          }
          case 'Encrypt': {
            const keyId = String(input.KeyId);
            return reply(200, { KeyId: keyId, CiphertextBlob: seal(keyId, Buffer.from(String(input.Plaintext), 'base64'), ctx).toString('base64') });
          }
          case 'Decrypt': {
            let opened;
            try {
              opened = open(Buffer.from(String(input.CiphertextBlob), 'base64'), ctx);
            } catch {
              return fail('InvalidCiphertextException', 'the ciphertext or encryption context is invalid');
            }
            if (input.KeyId !== undefined && input.KeyId !== opened.keyId) return fail('IncorrectKeyException', 'wrong key id');
            return reply(200, { KeyId: opened.keyId, Plaintext: opened.plaintext.toString('base64'), EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' });
          }
          default:
            return fail('UnsupportedOperationException', `fake KMS does not implement ${op}`);
        }
      } catch (err) {
        return fail('InternalFailure', (err as Error).message);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    calls,
    stop: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
