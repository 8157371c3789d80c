import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { deriveKeys } from '../../src/format/kdf.js';
import type { BucketConfig } from '../../src/format/config.js';
import {
  createKeySource,
  decodeKey,
  deriveFromPassphrase,
  encodeKey,
  EnvKeySource,
  generateKeyFile,
  KeyError,
  KeyFileSource,
  keyIdOf,
  loadKeys,
  MemkeySource,
  newScryptParams,
  PassphraseFileSource,
} from '../../src/keys/index.js';

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 's3cryptfs-keys-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function configWith(kdf?: BucketConfig['kdf']): Pick<BucketConfig, 'kdf'> {
  return { kdf };
}

async function rejectsCode(t: Test, p: Promise<unknown>, code: string, msg?: RegExp): Promise<void> {
  try {
    await p;
    t.fail(`expected KeyError ${code}`);
  } catch (err) {
    t.type(err, KeyError);
    t.equal((err as KeyError).code, code, `code ${code}`);
    if (msg) t.match((err as Error).message, msg);
  }
}

t.test('key encodings round-trip and reject garbage', async (t) => {
  const key = new Uint8Array(32).map((_, i) => i * 7);
  for (const enc of ['hex', 'base64'] as const) {
    t.same(decodeKey(encodeKey(key, enc) + '\n', 'test'), key, enc);
  }
  t.same(decodeKey(Buffer.from(key).toString('base64url'), 'test'), key, 'base64url accepted');
  t.throws(() => decodeKey('abc', 'test'), { code: 'KEY_INVALID' });
  t.throws(() => decodeKey('zz'.repeat(32), 'test'), { code: 'KEY_INVALID' });
  t.throws(() => decodeKey(Buffer.alloc(31).toString('base64'), 'test'), { code: 'KEY_INVALID' });
  try {
    decodeKey('ab'.repeat(31) + 'xx', 'my source');
  } catch (err) {
    t.match((err as Error).message, /my source/);
    t.notMatch((err as Error).message, /abab/, 'message does not echo the input');
  }
});

t.test('keygen writes a 0600 key file, refuses to overwrite, and loads back', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'master.key');
  const key = await generateKeyFile(file);
  t.equal(key.length, 32);
  t.equal((await stat(file)).mode & 0o777, 0o600);
  const text = await readFile(file, 'utf8');
  t.match(text, /^[0-9a-f]{64}\n$/);
  const loaded = await new KeyFileSource(file).load({});
  t.same(loaded, key);
  t.equal(keyIdOf(loaded), deriveKeys(key).keyId.toString('hex'));
  await rejectsCode(t, generateKeyFile(file), 'KEY_FILE_EXISTS');
  t.equal(await readFile(file, 'utf8'), text, 'existing key untouched');

  const b64 = path.join(dir, 'b64.key');
  const k2 = await generateKeyFile(b64, 'base64');
  t.match(await readFile(b64, 'utf8'), /^[A-Za-z0-9+/]{43}=\n$/);
  t.same(await new KeyFileSource(b64).load({}), k2);
});

t.test('key file permissions are enforced', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'open.key');
  await generateKeyFile(file);
  await chmod(file, 0o644);
  await rejectsCode(t, new KeyFileSource(file).load({}), 'KEY_FILE_INSECURE', /chmod 600 .*open\.key/);
  await chmod(file, 0o640);
  await rejectsCode(t, new KeyFileSource(file).load({}), 'KEY_FILE_INSECURE');
  await chmod(file, 0o400);
  t.equal((await new KeyFileSource(file).load({})).length, 32, '0400 is fine');
  await rejectsCode(t, new KeyFileSource(path.join(dir, 'missing.key')).load({}), 'KEY_FILE_MISSING', /no such file/);
  await rejectsCode(t, new KeyFileSource(dir).load({}), 'KEY_FILE_MISSING');
  const bad = path.join(dir, 'bad.key');
  await writeFile(bad, 'not a key\n', { mode: 0o600 });
  await rejectsCode(t, new KeyFileSource(bad).load({}), 'KEY_INVALID');
});

t.test('passphrase source derives with the bucket kdf params', async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, 'pass');
  await writeFile(file, 'correct horse battery staple\n', { mode: 0o600 });
  const kdf = newScryptParams({ N: 1024 });
  t.equal(kdf.N, 1024);
  t.equal(kdf.r, 8);
  t.equal(kdf.p, 1);
  t.match(kdf.salt, /^[0-9a-f]{64}$/);
  const src = new PassphraseFileSource(file);
  const k1 = await src.load({ config: configWith(kdf) });
  t.equal(k1.length, 32);
  t.same(await src.load({ config: configWith(kdf) }), k1, 'deterministic');
  t.same(k1, await deriveFromPassphrase(Buffer.from('correct horse battery staple'), kdf), 'one trailing newline stripped');
  const other = newScryptParams({ N: 1024 });
  t.notSame(await src.load({ config: configWith(other) }), k1, 'salt matters');
  await rejectsCode(t, src.load({ config: configWith(undefined) }), 'KDF_MISSING', /--key-file/);
  await rejectsCode(t, src.load({}), 'KDF_MISSING');

  await writeFile(file, '\n');
  await rejectsCode(t, src.load({ config: configWith(kdf) }), 'PASSPHRASE_EMPTY');
  await chmod(file, 0o604);
  await rejectsCode(t, src.load({ config: configWith(kdf) }), 'KEY_FILE_INSECURE');
  t.equal(newScryptParams().N, 2 ** 17, 'default N is 2^17');
  t.throws(() => newScryptParams({ N: 1000 }));
});

t.test('environment variable source', async (t) => {
  const key = new Uint8Array(32).fill(9);
  const env = { S3CRYPTFS_KEY: encodeKey(key, 'base64') };
  const src = new EnvKeySource('S3CRYPTFS_KEY', env);
  t.same(await src.load({}), key);
  t.equal(src.describe(), 'environment variable S3CRYPTFS_KEY');
  await rejectsCode(t, new EnvKeySource('S3CRYPTFS_KEY', {}).load({}), 'NO_KEY_SOURCE');
  await rejectsCode(t, new EnvKeySource('S3CRYPTFS_KEY', { S3CRYPTFS_KEY: 'nope' }).load({}), 'KEY_INVALID');
});

t.test('a memkey URL over TCP is refused: the key is only served on a local Unix socket', async (t) => {
  const src = createKeySource({ keyFile: 'memkey://user:secret@keyhost:7000/k?token=abc' });
  t.type(src, MemkeySource);
  t.notMatch(src.describe(), /secret|token/);
  await rejectsCode(t, src.load({}), 'SOURCE_UNAVAILABLE', /only on a local Unix socket/);
});

t.test('createKeySource chooses exactly one source', async (t) => {
  t.type(createKeySource({ keyFile: '/x' }), KeyFileSource);
  t.type(createKeySource({ passphraseFile: '/x' }), PassphraseFileSource);
  t.type(createKeySource({ keyEnv: 'S3CRYPTFS_KEY' }), EnvKeySource);
  t.throws(() => createKeySource({}), { code: 'NO_KEY_SOURCE' });
  t.throws(() => createKeySource({ keyFile: '/x', passphraseFile: '/y' }), { code: 'AMBIGUOUS_KEY_SOURCE' });
});

t.test('loadKeys derives and zeroes the master key', async (t) => {
  const key = new Uint8Array(32).fill(5);
  const expected = deriveKeys(new Uint8Array(32).fill(5));
  const loaded = await loadKeys({ describe: () => 'test', load: async () => key });
  t.same(loaded.keys.kek, expected.kek);
  t.equal(loaded.keyId, expected.keyId.toString('hex'));
  t.same(key, new Uint8Array(32), 'master key buffer zeroed');
});
