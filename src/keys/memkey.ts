/**
 * Seam for network key delivery (`memkey:` URLs). A later issue implements the protocol; until then
 * the source is recognised, described, and refuses to load with a clear message.
 */
import { KeyError } from './errors.js';
import type { KeyContext, KeySource } from './types.js';

export const MEMKEY_SCHEME = 'memkey:';

export function isMemkeyUrl(value: string): boolean {
  return value.toLowerCase().startsWith(MEMKEY_SCHEME);
}

export class MemkeySource implements KeySource {
  constructor(readonly url: string) {}

  describe(): string {
    return `network key ${redact(this.url)}`;
  }

  async load(_ctx: KeyContext): Promise<Uint8Array> {
    throw new KeyError('SOURCE_UNAVAILABLE', `network key delivery (${MEMKEY_SCHEME} URLs) is not available yet; use --key-file or --passphrase-file`);
  }
}

/** URLs may carry tokens in the user-info or query; describe() shows neither. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    u.search = '';
    u.hash = '';
    return u.toString();
  } catch {
    return MEMKEY_SCHEME;
  }
}
