/**
 * The memkey-server's long-term Ed25519 identity: a 32-byte seed in a 0600 file,
 *
 *   # s3cryptfs memkey-server identity (Ed25519 seed); fingerprint <64 hex>
 *   <64 hex digits>
 *
 * The fingerprint (SHA-256 of the public key) is what administrators pin.
 */
import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { KeyError } from '../keys/errors.js';
import { errnoText, readSecretFile } from '../keys/secure-file.js';
import { MemkeyError } from './errors.js';
import { identityFromSeed, toHex, type ServerIdentity } from './protocol.js';

/** Creates `path` (mode 0600, never overwrites) with a new identity and returns it. */
export async function generateIdentityFile(path: string): Promise<ServerIdentity> {
  let handle;
  try {
    handle = await open(path, 'wx', 0o600);
  } catch (err) {
    if ((err as { code?: string }).code === 'EEXIST') {
      throw new MemkeyError('IDENTITY_FILE', `${path} already exists; refusing to overwrite an identity (administrators have pinned its fingerprint)`);
    }
    throw new MemkeyError('IDENTITY_FILE', `cannot create identity file ${path}: ${errnoText(err)}`);
  }
  const identity = identityFromSeed(new Uint8Array(randomBytes(32)));
  const text = Buffer.from(`# s3cryptfs memkey-server identity (Ed25519 seed); fingerprint ${identity.fingerprint}\n${toHex(identity.seed)}\n`, 'latin1');
  try {
    await handle.chmod(0o600);
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    text.fill(0);
    await handle.close();
  }
  return identity;
}

/** Reads an identity file; it must be a regular file readable by its owner only. */
export async function loadIdentityFile(path: string): Promise<ServerIdentity> {
  let raw: Buffer;
  try {
    raw = await readSecretFile(path, 'identity file', 4096);
  } catch (err) {
    if (err instanceof KeyError) {
      const hint = err.code === 'KEY_FILE_MISSING' ? ' (create one with --generate-identity)' : '';
      throw new MemkeyError('IDENTITY_FILE', err.message + hint);
    }
    throw err;
  }
  try {
    const lines = raw.toString('latin1').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
    if (lines.length !== 1 || !/^[0-9a-fA-F]{64}$/.test(lines[0])) {
      throw new MemkeyError('IDENTITY_FILE', `identity file ${path} does not hold an identity (expected one line of 64 hex digits)`);
    }
    return identityFromSeed(new Uint8Array(Buffer.from(lines[0], 'hex')));
  } finally {
    raw.fill(0);
  }
}
