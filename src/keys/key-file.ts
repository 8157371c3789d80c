/** Master key stored in a local file: 32 random bytes, hex or base64, one line, mode 0600. */
import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { MASTER_KEY_SIZE } from '../format/kdf.js';
import { decodeKey, encodeKey, type KeyEncoding } from './encoding.js';
import { KeyError } from './errors.js';
import { errnoText, readSecretFile } from './secure-file.js';
import type { KeyContext, KeySource } from './types.js';

const MAX_KEY_FILE_BYTES = 1024;

export class KeyFileSource implements KeySource {
  constructor(readonly path: string) {}

  describe(): string {
    return `key file ${this.path}`;
  }

  async load(_ctx: KeyContext): Promise<Uint8Array> {
    const raw = await readSecretFile(this.path, 'key file', MAX_KEY_FILE_BYTES);
    try {
      return decodeKey(raw.toString('latin1'), `key file ${this.path}`);
    } finally {
      raw.fill(0);
    }
  }
}

/**
 * Writes a new random master key to `path` (created with mode 0600; an existing file is never
 * overwritten). Returns the key so the caller can derive its key id; the caller zeroes it.
 */
export async function generateKeyFile(path: string, encoding: KeyEncoding = 'hex'): Promise<Uint8Array> {
  let handle;
  try {
    handle = await open(path, 'wx', 0o600);
  } catch (err) {
    if ((err as { code?: string }).code === 'EEXIST') {
      throw new KeyError('KEY_FILE_EXISTS', `${path} already exists; refusing to overwrite a key file`);
    }
    throw new KeyError('KEY_FILE_MISSING', `cannot create key file ${path}: ${errnoText(err)}`);
  }
  const key = new Uint8Array(randomBytes(MASTER_KEY_SIZE));
  const text = Buffer.from(encodeKey(key, encoding) + '\n', 'latin1');
  try {
    await handle.chmod(0o600); // in case a default ACL or odd umask widened it
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    text.fill(0);
    await handle.close();
  }
  return key;
}
