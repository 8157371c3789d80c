// Passphrase-derived keys: scrypt parameters live in the bucket config; small N keeps tests fast.
import { chmod, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { assertOneLineError, cliFixture } from './fixtures/cli.js';

t.test('passphrase flow', async (t) => {
  const f = await cliFixture(t);
  const pass = path.join(f.dir, 'pass.txt');
  const wrong = path.join(f.dir, 'wrong.txt');
  await writeFile(pass, 'correct horse battery staple\n', { mode: 0o600 });
  await writeFile(wrong, 'incorrect horse\n', { mode: 0o600 });

  let r = await f.cli(['init', f.url('p'), '--passphrase-file', pass, '--kdf-n', '1024']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /passphrase, scrypt N=1024/);
  const config = JSON.parse((await f.store.getObject(f.bucket, 'p/.s3cryptfs.json')).body.toString());
  t.match(config.kdf, { algorithm: 'scrypt', N: 1024, r: 8, p: 1 });
  t.notOk(JSON.stringify(config).includes('horse'), 'no passphrase in the config');

  r = await f.cli(['put', '-', f.url('p/note.txt'), '--passphrase-file', pass], { input: 'hi' });
  t.equal(r.code, 0, r.stderr);
  r = await f.cli(['cat', f.url('p/note.txt')], { env: { S3CRYPTFS_PASSPHRASE_FILE: pass } });
  t.equal(r.stdout, 'hi');

  assertOneLineError(t, await f.cli(['cat', f.url('p/note.txt'), '--passphrase-file', wrong]), 3, /wrong key/);
  const key = path.join(f.dir, 'k.key');
  await f.cli(['keygen', '--out', key]);
  assertOneLineError(t, await f.cli(['cat', f.url('p/note.txt'), '--key-file', key]), 3, /--passphrase-file/);

  // A key-file store refuses a passphrase with a clear message.
  t.equal((await f.cli(['init', f.url('k'), '--key-file', key])).code, 0);
  assertOneLineError(t, await f.cli(['ls', f.url('k/'), '--passphrase-file', pass]), 12, /--key-file/);
  assertOneLineError(t, await f.cli(['init', f.url('z'), '--key-file', key, '--kdf-n', '1024']), 2, /passphrase/);
  assertOneLineError(t, await f.cli(['init', f.url('z'), '--passphrase-file', pass, '--kdf-n', '1000']), 2, /power of two/);

  await writeFile(pass, '\n');
  assertOneLineError(t, await f.cli(['init', f.url('e'), '--passphrase-file', pass, '--kdf-n', '1024']), 12, /empty/);
  await writeFile(pass, 'x\n');
  await chmod(pass, 0o644);
  assertOneLineError(t, await f.cli(['init', f.url('e'), '--passphrase-file', pass, '--kdf-n', '1024']), 12, /chmod 600/);
});
