/** The bucket config object (.s3cryptfs.json): validation of every field, and round trips. */
import t from 'tap';
import {
  CONFIG_OBJECT_NAME, DEFAULT_CHUNK_SIZE, DEFAULT_CIPHER, encodeConfig, parseConfig, type BucketConfig,
} from '../../src/format/config.js';
import { ConfigError } from '../../src/format/errors.js';
import { isValidChunkSize } from '../../src/format/header.js';

const KEY_ID = '00112233445566778899aabbccddeeff';
/** A well-formed wrapped bucket-keys entry (136 bytes as base64url); parseConfig does not open it. */
const WRAPPED = (c: string) => c.repeat(182);
const base: BucketConfig = {
  format: 's3cryptfs', version: 1, cipher: 'chacha20-poly1305', chunkSize: 65536, names: 'aes-siv', keyIds: [KEY_ID], bucketKeys: { [KEY_ID]: WRAPPED('A') },
};
const kdf = { algorithm: 'scrypt' as const, N: 2 ** 17, r: 8, p: 1, salt: 'ab'.repeat(16) };

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (e) {
    return e instanceof ConfigError ? e.code : `${(e as Error).name}: ${(e as Error).message}`;
  }
}

/** Parses `base` with `patch` applied (a field set to undefined is removed). */
function parseWith(patch: Record<string, unknown>): string {
  const obj: Record<string, unknown> = { ...base, ...patch };
  for (const k of Object.keys(patch)) if (patch[k] === undefined) delete obj[k];
  return codeOf(() => parseConfig(JSON.stringify(obj)));
}

t.test('constants', async (t) => {
  t.equal(CONFIG_OBJECT_NAME, '.s3cryptfs.json');
  t.ok(isValidChunkSize(DEFAULT_CHUNK_SIZE), 'default chunk size is valid');
  t.equal(DEFAULT_CIPHER, 'chacha20-poly1305');
});

t.test('round trips', async (t) => {
  const variants: BucketConfig[] = [
    base,
    { ...base, cipher: 'aes-256-gcm', chunkSize: 4096, names: 'plain' },
    {
      ...base, chunkSize: 16 * 1024 * 1024, keyIds: [KEY_ID, 'f'.repeat(32), '0'.repeat(32)],
      bucketKeys: { [KEY_ID]: WRAPPED('A'), ['f'.repeat(32)]: WRAPPED('b'), ['0'.repeat(32)]: WRAPPED('_') },
    },
    { ...base, kdf },
    { ...base, kdf: { algorithm: 'scrypt', N: 2, r: 1, p: 64, salt: 'a'.repeat(128) } },
  ];
  for (const c of variants) {
    const text = encodeConfig(c);
    t.ok(text.endsWith('}\n'), 'ends with a newline');
    t.equal(text, JSON.stringify(JSON.parse(text), null, 2) + '\n', 'two-space JSON');
    t.same(parseConfig(text), c, `${c.cipher}/${c.chunkSize}/${c.names}${c.kdf ? '/kdf' : ''}`);
    t.equal(encodeConfig(parseConfig(text)), text, 'stable');
  }
  t.notOk('kdf' in parseConfig(encodeConfig(base)), 'no kdf field when none was given');
  // Fields are copied in a fixed order; unknown fields are dropped, not carried.
  const shuffled = JSON.stringify({ bucketKeys: base.bucketKeys, keyIds: [KEY_ID], names: 'aes-siv', chunkSize: 65536, cipher: 'chacha20-poly1305', version: 1, format: 's3cryptfs', extra: 1 });
  t.equal(encodeConfig(parseConfig(shuffled)), encodeConfig(base), 'canonical field order, unknown field dropped');
  const kdfExtra = parseConfig(JSON.stringify({ ...base, kdf: { ...kdf, extra: 'x' } }));
  t.same(kdfExtra.kdf, kdf, 'unknown kdf field dropped');
  const input = { ...base, keyIds: [KEY_ID] };
  const parsed = parseConfig(JSON.stringify(input));
  parsed.keyIds.push('x');
  t.same(input.keyIds, [KEY_ID], 'result does not alias its input');
});

t.test('not a config', async (t) => {
  for (const text of ['', '{', 'not json', 'null', '[]', '1', '"s3cryptfs"', 'true', '{}']) {
    t.equal(codeOf(() => parseConfig(text)), 'CONFIG_INVALID', JSON.stringify(text));
  }
  t.equal(parseWith({ format: 'other' }), 'CONFIG_INVALID', 'format other');
  t.equal(parseWith({ format: undefined }), 'CONFIG_INVALID', 'format missing');
});

t.test('version', async (t) => {
  for (const v of [2, 0, '1', 1.5, null]) t.equal(parseWith({ version: v }), 'CONFIG_UNSUPPORTED', `version ${JSON.stringify(v)}`);
  t.equal(parseWith({ version: undefined }), 'CONFIG_UNSUPPORTED', 'version missing');
});

t.test('cipher', async (t) => {
  for (const c of ['aes-128-gcm', 'chacha20', 'AES-256-GCM', '', 1, 2, null, 'toString', '__proto__', 'constructor', 'hasOwnProperty']) {
    t.equal(parseWith({ cipher: c }), 'CONFIG_INVALID', `cipher ${JSON.stringify(c)}`);
  }
  t.equal(parseWith({ cipher: undefined }), 'CONFIG_INVALID', 'cipher missing');
  t.equal(parseWith({ cipher: 'aes-256-gcm' }), 'ok');
});

t.test('chunk size', async (t) => {
  for (const s of [0, -4096, 2048, 4095, 4097, 6144, 65535, 16 * 1024 * 1024 + 4096, 2 ** 32, 4096.5, '65536', null, true]) {
    t.equal(parseWith({ chunkSize: s }), 'CONFIG_INVALID', `chunkSize ${JSON.stringify(s)}`);
  }
  t.equal(parseWith({ chunkSize: undefined }), 'CONFIG_INVALID', 'chunkSize missing');
  for (const s of [4096, 8192, 12288, 65536, 1 << 20, 16 << 20]) t.equal(parseWith({ chunkSize: s }), 'ok', `chunkSize ${s}`);
});

t.test('name mode', async (t) => {
  for (const n of ['siv', 'PLAIN', '', null, 1, true]) t.equal(parseWith({ names: n }), 'CONFIG_INVALID', `names ${JSON.stringify(n)}`);
  t.equal(parseWith({ names: undefined }), 'CONFIG_INVALID', 'names missing');
  t.equal(parseWith({ names: 'plain' }), 'ok');
});

t.test('key ids', async (t) => {
  const bad = [[], 'not a list', null, [KEY_ID.toUpperCase()], [KEY_ID.slice(1)], [KEY_ID + '0'], [1], [KEY_ID, 'zz'.repeat(16)], [null], {}];
  for (const k of bad) t.equal(parseWith({ keyIds: k }), 'CONFIG_INVALID', `keyIds ${JSON.stringify(k)}`);
  t.equal(parseWith({ keyIds: undefined }), 'CONFIG_INVALID', 'keyIds missing');
  t.equal(parseWith({ keyIds: [KEY_ID, KEY_ID] }), 'CONFIG_INVALID', 'a key id twice');
});

t.test('bucket keys: one wrapped entry per key id, no other', async (t) => {
  const other = 'f'.repeat(32);
  const cases: [string, unknown, unknown?][] = [
    ['missing', undefined],
    ['null', null],
    ['a list', [WRAPPED('A')]],
    ['a string', WRAPPED('A')],
    ['no entry for the key id', { [other]: WRAPPED('A') }],
    ['an extra entry', { [KEY_ID]: WRAPPED('A'), [other]: WRAPPED('A') }],
    ['entry too short', { [KEY_ID]: 'A'.repeat(181) }],
    ['entry too long', { [KEY_ID]: 'A'.repeat(183) }],
    ['entry not base64url', { [KEY_ID]: '+'.repeat(182) }],
    ['entry not a string', { [KEY_ID]: 1 }],
    ['second key id without an entry', { [KEY_ID]: WRAPPED('A') }, [KEY_ID, other]],
  ];
  for (const [what, bucketKeys, keyIds] of cases) {
    t.equal(parseWith({ bucketKeys, ...(keyIds ? { keyIds } : {}) }), 'CONFIG_INVALID', `bucketKeys ${what}`);
  }
  t.equal(parseWith({ keyIds: [other, KEY_ID], bucketKeys: { [KEY_ID]: WRAPPED('A'), [other]: WRAPPED('B') } }), 'ok', 'two keys (rotation)');
});

t.test('scrypt parameters', async (t) => {
  const cases: [string, unknown][] = [
    ['null', null],
    ['a string', 'scrypt'],
    ['a list', []],
    ['argon2', { ...kdf, algorithm: 'argon2id' }],
    ['no algorithm', { N: kdf.N, r: 8, p: 1, salt: kdf.salt }],
    ['N = 1', { ...kdf, N: 1 }],
    ['N not a power of two', { ...kdf, N: 3 * 2 ** 14 }],
    ['N = 2^25', { ...kdf, N: 2 ** 25 }],
    ['N = 2^31', { ...kdf, N: 2 ** 31 }],
    ['N as string', { ...kdf, N: '131072' }],
    ['r = 0', { ...kdf, r: 0 }],
    ['r = 65', { ...kdf, r: 65 }],
    ['p = 0', { ...kdf, p: 0 }],
    ['p = 1.5', { ...kdf, p: 1.5 }],
    ['salt 15 bytes', { ...kdf, salt: 'ab'.repeat(15) }],
    ['salt 65 bytes', { ...kdf, salt: 'ab'.repeat(65) }],
    ['salt odd number of hex digits', { ...kdf, salt: 'a'.repeat(33) }],
    ['salt upper case', { ...kdf, salt: 'AB'.repeat(16) }],
    ['salt not hex', { ...kdf, salt: 'g'.repeat(32) }],
    ['salt missing', { algorithm: 'scrypt', N: kdf.N, r: 8, p: 1 }],
  ];
  for (const [what, value] of cases) t.equal(parseWith({ kdf: value }), 'CONFIG_INVALID', `kdf ${what}`);
  t.equal(parseWith({ kdf: { ...kdf, N: 2 ** 24 } }), 'ok', 'N = 2^24 is the largest accepted');
});

t.test('encodeConfig refuses what parseConfig refuses', async (t) => {
  t.equal(codeOf(() => encodeConfig({ ...base, chunkSize: 1000 })), 'CONFIG_INVALID');
  t.equal(codeOf(() => encodeConfig({ ...base, version: 2 as 1 })), 'CONFIG_UNSUPPORTED');
  t.equal(codeOf(() => encodeConfig({ ...base, keyIds: [] })), 'CONFIG_INVALID');
});
