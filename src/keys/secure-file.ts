/** Reading small secret files (key, passphrase) safely: regular file, owner-only permissions, bounded size. */
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { KeyError } from './errors.js';

/** Permission bits that must be clear on a secret file: anything for group or others. */
const GROUP_OTHER_BITS = 0o077;

export async function readSecretFile(path: string, what: string, maxBytes: number): Promise<Buffer> {
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY);
  } catch (err) {
    throw new KeyError('KEY_FILE_MISSING', `cannot read ${what} ${path}: ${errnoText(err)}`);
  }
  try {
    // fstat the opened descriptor, so the checked file is the file we read.
    const st = await handle.stat();
    if (!st.isFile()) throw new KeyError('KEY_FILE_MISSING', `${what} ${path} is not a regular file`);
    const mode = st.mode & 0o777;
    if (process.platform !== 'win32' && (mode & GROUP_OTHER_BITS) !== 0) {
      throw new KeyError(
        'KEY_FILE_INSECURE',
        `${what} ${path} is accessible by group or others (mode ${mode.toString(8).padStart(4, '0')}); run: chmod 600 ${shellQuote(path)}`,
      );
    }
    if (st.size > maxBytes) throw new KeyError('KEY_INVALID', `${what} ${path} is too large (${st.size} bytes, at most ${maxBytes})`);
    const buf = Buffer.alloc(maxBytes + 1);
    let filled = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buf, filled, buf.length - filled, null);
      if (bytesRead === 0) break;
      filled += bytesRead;
      if (filled > maxBytes) {
        buf.fill(0);
        throw new KeyError('KEY_INVALID', `${what} ${path} is too large (more than ${maxBytes} bytes)`);
      }
    }
    const out = Buffer.from(buf.subarray(0, filled));
    buf.fill(0);
    return out;
  } finally {
    await handle.close();
  }
}

export function errnoText(err: unknown): string {
  const code = (err as { code?: string }).code;
  switch (code) {
    case 'ENOENT': return 'no such file';
    case 'EACCES': return 'permission denied';
    case 'EISDIR': return 'is a directory';
    case 'ELOOP': return 'too many symbolic links';
    default: return code ?? (err instanceof Error ? err.message : String(err));
  }
}

export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./+:@%=-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
