import { createHash } from 'node:crypto';
import t from 'tap';

import { emptyDirIndex, IntegrityError, openDirIndex, sealDirIndex, type DirIndex } from '../../src/format/index.js';

/** SHA-256 of the sealed sample (recorded when the format was defined; a change means the format changed). */
const VECTOR_SHA256 = 'f6a02a95f766d75f1ef8a0d5fe9e7afa0f04a636aa39d78f3402387db747d730';
const key = createHash('sha256').update('dir index test key').digest();
const nonce = createHash('sha256').update('dir index test nonce').digest().subarray(0, 24);
const fixedRand = (n: number) => {
  if (n !== 24) throw new Error(`unexpected rand(${n})`);
  return Buffer.from(nonce);
};

function sample(): DirIndex {
  const index = emptyDirIndex();
  index.files.set('a.txt', { etag: '"0123456789abcdef0123456789abcdef"', size: 12, mtimeSec: 1_700_000_000, attrs: { 'posix:mode': '640', 'posix:mtime': '1700000000123456789' } });
  index.files.set('link', { etag: '"fedcba9876543210fedcba9876543210"', size: 0, mtimeSec: 1_700_000_001, attrs: { 'posix:type': 'symlink', 'posix:target': 'a.txt' } });
  index.dirs.set('sub', { 'posix:mode': '700' });
  return index;
}

const code = (fn: () => unknown) => {
  try {
    fn();
    return 'no error';
  } catch (err) {
    return err instanceof IntegrityError ? err.code : String(err);
  }
};

t.test('round trip', async (t) => {
  const blob = sealDirIndex(key, 'dir/', sample());
  const back = openDirIndex(key, 'dir/', blob);
  t.same([...back.files], [...sample().files]);
  t.same([...back.dirs], [...sample().dirs]);
  const empty = openDirIndex(key, '.s3cryptfs-index', sealDirIndex(key, '.s3cryptfs-index', emptyDirIndex()));
  t.equal(empty.files.size + empty.dirs.size, 0, 'empty index');
  t.not(sealDirIndex(key, 'dir/', sample()).toString('hex'), blob.toString('hex'), 'fresh nonce per seal');
});

t.test('known-answer vector', async (t) => {
  const blob = sealDirIndex(key, 'dir/', sample(), fixedRand);
  t.equal(blob.subarray(0, 5).toString('latin1'), 'S3DI\x01', 'magic and version');
  t.equal(createHash('sha256').update(blob).digest('hex'), VECTOR_SHA256, 'sealed bytes are stable');
  t.same([...openDirIndex(key, 'dir/', blob).files.keys()], ['a.txt', 'link']);
});

t.test('tampering, swaps and foreign keys are integrity errors', async (t) => {
  const blob = sealDirIndex(key, 'dir/', sample());
  for (const i of [0, 4, 5, 20, 29, blob.length - 1]) {
    const bad = Buffer.from(blob);
    bad[i] ^= 1;
    t.equal(code(() => openDirIndex(key, 'dir/', bad)), 'DIR_INDEX_TAMPERED', `byte ${i} flipped`);
  }
  t.equal(code(() => openDirIndex(key, 'other/', blob)), 'DIR_INDEX_TAMPERED', 'moved to another directory');
  t.equal(code(() => openDirIndex(Buffer.alloc(32, 7), 'dir/', blob)), 'DIR_INDEX_TAMPERED', 'another bucket key');
  t.equal(code(() => openDirIndex(key, 'dir/', blob.subarray(0, blob.length - 1))), 'DIR_INDEX_TAMPERED', 'truncated');
  t.equal(code(() => openDirIndex(key, 'dir/', Buffer.alloc(0))), 'DIR_INDEX_TAMPERED', 'empty');
  t.equal(code(() => openDirIndex(key, 'dir/', Buffer.from('{"f":[],"d":[]}'))), 'DIR_INDEX_TAMPERED', 'plaintext');
});

