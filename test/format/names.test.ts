/**
 * File-name encryption: AES-SIV (RFC 5297) with no associated data, unpadded base64url.
 * Checked against a small AES-SIV written here on top of node:crypto's AES, which is itself checked
 * against the RFC 5297 appendix A.1 example.
 */
import t from 'tap';
import { createCipheriv, randomBytes } from 'node:crypto';
import { aessiv } from '@noble/ciphers/aes.js';
import {
  decryptName, decryptPath, encryptedNameLength, encryptName, encryptPath, MAX_KEY_BYTES, MAX_NAME_BYTES, NameError,
} from '../../src/format/names.js';
import { newBucketKeys } from '../../src/format/bucket-keys.js';

const keys = newBucketKeys();

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (e) {
    return e instanceof NameError ? e.code : `${(e as Error).name}: ${(e as Error).message}`;
  }
}

// ---- reference AES-SIV (RFC 5297) over node:crypto's raw AES ----

function aesBlock(key: Buffer, block: Buffer): Buffer {
  const c = createCipheriv(`aes-${key.length * 8}-ecb`, key, null).setAutoPadding(false);
  return Buffer.concat([c.update(block), c.final()]);
}

/** Doubling in GF(2^128) as RFC 5297 section 2.3 defines it. */
function dbl(b: Buffer): Buffer {
  const out = Buffer.alloc(16);
  for (let i = 0; i < 16; i++) out[i] = ((b[i] << 1) | (i < 15 ? b[i + 1] >> 7 : 0)) & 0xff;
  if (b[0] & 0x80) out[15] ^= 0x87;
  return out;
}

function xor(a: Buffer, b: Buffer): Buffer {
  return Buffer.from(a.map((x, i) => x ^ b[i]));
}

/** AES-CMAC (RFC 4493). */
function cmac(key: Buffer, msg: Buffer): Buffer {
  const k1 = dbl(aesBlock(key, Buffer.alloc(16)));
  const k2 = dbl(k1);
  const complete = msg.length > 0 && msg.length % 16 === 0;
  const padded = complete ? Buffer.from(msg) : Buffer.concat([msg, Buffer.from([0x80]), Buffer.alloc(15 - (msg.length % 16))]);
  const lastAt = padded.length - 16;
  xor(padded.subarray(lastAt), complete ? k1 : k2).copy(padded, lastAt);
  let x: Buffer = Buffer.alloc(16);
  for (let i = 0; i < padded.length; i += 16) x = aesBlock(key, xor(x, padded.subarray(i, i + 16)));
  return x;
}

function s2v(key: Buffer, strings: Buffer[]): Buffer {
  let d = cmac(key, Buffer.alloc(16));
  for (const s of strings.slice(0, -1)) d = xor(dbl(d), cmac(key, s));
  const last = strings[strings.length - 1];
  let tail: Buffer;
  if (last.length >= 16) {
    tail = Buffer.from(last);
    xor(tail.subarray(tail.length - 16), d).copy(tail, tail.length - 16);
  } else {
    tail = xor(dbl(d), Buffer.concat([last, Buffer.from([0x80]), Buffer.alloc(15 - last.length)]));
  }
  return cmac(key, tail);
}

function sivEncrypt(key: Buffer, ad: Buffer[], plain: Buffer): Buffer {
  const half = key.length / 2;
  const v = s2v(key.subarray(0, half), [...ad, plain]);
  const q = Buffer.from(v);
  q[8] &= 0x7f;
  q[12] &= 0x7f;
  const ctr = createCipheriv(`aes-${half * 8}-ctr`, key.subarray(half), q);
  return Buffer.concat([v, ctr.update(plain), ctr.final()]);
}

const hex = (s: string) => Buffer.from(s.replace(/\s/g, ''), 'hex');

t.test('reference AES-SIV reproduces RFC 5297 A.1, and noble agrees', async (t) => {
  const key = hex('fffefdfc fbfaf9f8 f7f6f5f4 f3f2f1f0 f0f1f2f3 f4f5f6f7 f8f9fafb fcfdfeff');
  const ad = hex('10111213 14151617 18191a1b 1c1d1e1f 20212223 24252627');
  const plain = hex('11223344 55667788 99aabbcc ddee');
  const want = '85632d07c6e8f37f950acd320a2ecc9340c02b9690c4dc04daef7f6afe5c';
  t.equal(sivEncrypt(key, [ad], plain).toString('hex'), want, 'reference');
  t.equal(Buffer.from(aessiv(key, ad).encrypt(plain)).toString('hex'), want, 'noble');
});

t.test('encryptName = base64url(AES-256-SIV(nameKey, no AD, utf8 name)) for every length 1..255', async (t) => {
  t.equal(keys.nameKey.length, 64, 'two AES-256 halves');
  const wrong: number[] = [];
  for (let n = 1; n <= MAX_NAME_BYTES; n++) {
    const name = randomBytes(n).toString('base64').replace(/\//g, '_').slice(0, n);
    const want = sivEncrypt(keys.nameKey, [], Buffer.from(name, 'utf8')).toString('base64url');
    if (encryptName(keys.nameKey, name) !== want) wrong.push(n);
  }
  t.same(wrong, [], 'identical to the reference');
});

t.test('round trips', async (t) => {
  const names = [
    'a', 'report.pdf', '.hidden', '...', '.a', 'a.', ' ', 'with space', 'tab\there', 'new\nline', 'back\\slash',
    'colon:star*?', 'ünïcödé', 'e\u0301', '\u00e9', '日本語のファイル名', '😀🎉', '\u0000nul', 'x'.repeat(255),
    'é'.repeat(127) + 'x', '€'.repeat(85), // 255 bytes of multi-byte characters
  ];
  for (const name of names) {
    const enc = encryptName(keys.nameKey, name);
    t.match(enc, /^[A-Za-z0-9_-]+$/, `${JSON.stringify(name).slice(0, 40)}: unpadded base64url`);
    t.equal(decryptName(keys.nameKey, enc), name, `${JSON.stringify(name).slice(0, 40)}: round trip`);
    t.equal(enc.length, encryptedNameLength(Buffer.byteLength(name)), 'length formula');
  }
  t.not(encryptName(keys.nameKey, 'e\u0301'), encryptName(keys.nameKey, '\u00e9'), 'no Unicode normalisation: NFD and NFC differ');

  const paths = ['a', 'a/b', 'a/b/c.txt', 'dir/', 'a/b/', 'ü/ß/€'];
  for (const p of paths) {
    const enc = encryptPath(keys.nameKey, p);
    t.equal(decryptPath(keys.nameKey, enc), p, `path ${p}`);
    t.equal(enc.split('/').length, p.split('/').length, `path ${p}: one encrypted segment per segment`);
    t.equal(enc.endsWith('/'), p.endsWith('/'), `path ${p}: trailing slash kept`);
  }
  t.equal(encryptPath(keys.nameKey, ''), '', 'empty path is the root');
  t.equal(decryptPath(keys.nameKey, ''), '');
});

t.test('determinism', async (t) => {
  const a = encryptName(keys.nameKey, 'same');
  t.equal(encryptName(keys.nameKey, 'same'), a, 'equal names encrypt equally');
  t.equal(encryptName(Buffer.from(keys.nameKey), 'same'), a, 'depends on the key bytes only');
  t.not(encryptName(keys.nameKey, 'Same'), a, 'different names differ');
  t.not(encryptName(newBucketKeys().nameKey, 'same'), a, 'different name keys differ');
  const p = encryptPath(keys.nameKey, 'x/same/y');
  t.equal(p.split('/')[1], a, 'a segment encrypts the same at any depth (listing by prefix works)');
  t.equal(encryptPath(keys.nameKey, 'x/y/'), encryptPath(keys.nameKey, 'x/y') + '/', 'directory marker = path + "/"');
});

t.test('length limits', async (t) => {
  t.equal(MAX_NAME_BYTES, 255);
  t.equal(MAX_KEY_BYTES, 1024);
  for (let n = 1; n <= 300; n++) {
    t.equal(encryptedNameLength(n), Math.ceil((4 * (n + 16)) / 3), `formula n=${n}`);
  }
  t.equal(encryptedNameLength(255), 362, 'longest encrypted segment');
  t.equal(encryptName(keys.nameKey, 'x'.repeat(255)).length, 362);
  t.equal(codeOf(() => encryptName(keys.nameKey, 'x'.repeat(256))), 'NAME_TOO_LONG', '256 ASCII bytes');
  t.equal(codeOf(() => encryptName(keys.nameKey, 'é'.repeat(128))), 'NAME_TOO_LONG', '128 characters but 256 bytes');
  t.equal(codeOf(() => encryptName(keys.nameKey, '😀'.repeat(64))), 'NAME_TOO_LONG', '64 emoji = 256 bytes');
  t.equal(codeOf(() => encryptName(keys.nameKey, '😀'.repeat(63) + 'abc')), 'ok', '255 bytes with emoji');
  t.equal(codeOf(() => encryptPath(keys.nameKey, 'ok/' + 'x'.repeat(256))), 'NAME_TOO_LONG', 'limit applies per segment of a path');
  // An encrypted key is the sum of its segments plus separators; two maximal segments fit in 1024 bytes, three do not.
  const two = encryptPath(keys.nameKey, `${'a'.repeat(255)}/${'b'.repeat(255)}`);
  t.equal(two.length, 2 * 362 + 1);
  t.ok(2 * encryptedNameLength(255) + 1 <= MAX_KEY_BYTES && 3 * encryptedNameLength(255) + 2 > MAX_KEY_BYTES);
});

t.test('invalid segments and encodings', async (t) => {
  for (const bad of ['', '.', '..', 'a/b', '/']) {
    t.equal(codeOf(() => encryptName(keys.nameKey, bad)), 'NAME_INVALID', `encryptName(${JSON.stringify(bad)})`);
  }
  for (const bad of ['/a', 'a//b', 'a/./b', 'a/../b', '//', '/']) {
    t.equal(codeOf(() => encryptPath(keys.nameKey, bad)), 'NAME_INVALID', `encryptPath(${JSON.stringify(bad)})`);
  }
  t.equal(codeOf(() => encryptName(keys.nameKey, '...')), 'ok', '"..." is an ordinary name');
  const enc = encryptName(keys.nameKey, 'abc');
  const invalid = [
    '', enc + '=', enc.replace(/[-_]/g, '+') + '+', enc + '/', ' ' + enc, enc + '\n', 'not.base64',
    Buffer.alloc(16).toString('base64url'), // a bare tag: no object name is empty
    Buffer.alloc(8).toString('base64url'),
  ];
  for (const bad of invalid) {
    t.equal(codeOf(() => decryptName(keys.nameKey, bad)), 'NAME_INVALID', `decryptName(${JSON.stringify(bad)})`);
  }
  t.equal(codeOf(() => decryptName(keys.nameKey, Buffer.alloc(17).toString('base64url'))), 'NAME_TAMPERED', '17 zero bytes: well formed, not authentic');
  t.equal(codeOf(() => decryptPath(keys.nameKey, `${enc}/plainname`)), 'NAME_INVALID', 'a short plaintext segment (9 bytes once decoded: shorter than a tag)');
  t.equal(codeOf(() => decryptPath(keys.nameKey, `${enc}/aplaintextnameofafile123`)), 'NAME_TAMPERED', 'a plaintext segment that happens to be canonical base64url');
});
