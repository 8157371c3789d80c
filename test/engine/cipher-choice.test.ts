import t from 'tap';

import { hostPreferredCipher, preferredCipher } from '../../src/engine/cipher-choice.js';

const x86 = (flags: string) => `processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: ${flags}\nbugs\t\t: spectre_v1\n`;
const arm = (features: string) => `processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: ${features}\nCPU implementer\t: 0x41\n`;

t.test('AES-GCM only where the CPU has AES and carry-less multiply', async (t) => {
  t.equal(preferredCipher(x86('fpu sse2 pclmulqdq ssse3 aes avx'), 'x64'), 'aes-256-gcm');
  t.equal(preferredCipher(x86('fpu sse2 ssse3 aes avx'), 'x64'), 'chacha20-poly1305', 'no pclmulqdq');
  t.equal(preferredCipher(x86('fpu sse2 pclmulqdq ssse3 avx'), 'x64'), 'chacha20-poly1305', 'no aes');
  // "aes" must be a whole flag, not a substring of another one.
  t.equal(preferredCipher(x86('fpu vaes pclmulqdq'), 'x64'), 'chacha20-poly1305');
  t.equal(preferredCipher(arm('fp asimd evtstrm aes pmull sha1 sha2 crc32'), 'arm64'), 'aes-256-gcm');
  t.equal(preferredCipher(arm('fp asimd evtstrm crc32 cpuid'), 'arm64'), 'chacha20-poly1305', 'Raspberry Pi 4 style');
  t.equal(preferredCipher(arm('half thumb fastmult vfp edsp neon vfpv3'), 'arm'), 'chacha20-poly1305');
  t.equal(preferredCipher(null, 'x64'), 'chacha20-poly1305', 'no /proc/cpuinfo');
  t.equal(preferredCipher('garbage', 'x64'), 'chacha20-poly1305');
});

t.test('this host: one of the two, and stable', async (t) => {
  const c = hostPreferredCipher();
  t.ok(c === 'aes-256-gcm' || c === 'chacha20-poly1305');
  t.equal(hostPreferredCipher(), c);
});
