/**
 * Which content cipher new stores get by default. AES-256-GCM where the CPU has AES and carry-less
 * multiply instructions (OpenSSL then seals several GB/s per core, about 2-3x ChaCha20-Poly1305);
 * ChaCha20-Poly1305 elsewhere, where software AES is slow and not constant-time. gocryptfs decides
 * the same way. Existing stores keep the cipher their config names.
 */
import { readFileSync } from 'node:fs';

import type { CipherName } from '../format/index.js';

/** From /proc/cpuinfo's text and process.arch; pure, for tests. */
export function preferredCipher(cpuinfo: string | null, arch: string): CipherName {
  if (!cpuinfo) return 'chacha20-poly1305';
  // x86: "flags : ... aes ... pclmulqdq ..."; arm64: "Features : ... aes pmull ...".
  const line = cpuinfo.split('\n').find((l) => /^(flags|Features)\s*:/.test(l));
  if (!line) return 'chacha20-poly1305';
  const flags = new Set(line.slice(line.indexOf(':') + 1).trim().split(/\s+/));
  const fast = arch === 'x64' || arch === 'ia32' ? flags.has('aes') && flags.has('pclmulqdq')
    : arch === 'arm64' ? flags.has('aes') && flags.has('pmull')
      : false;
  return fast ? 'aes-256-gcm' : 'chacha20-poly1305';
}

let host: CipherName | undefined;

/** preferredCipher for this machine (read once). */
export function hostPreferredCipher(): CipherName {
  if (host === undefined) {
    let text: string | null = null;
    try {
      text = readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      // Not Linux, or /proc not mounted: the portable choice.
    }
    host = preferredCipher(text, process.arch);
  }
  return host;
}
