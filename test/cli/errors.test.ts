// Failure modes and their exit codes: one line on stderr, no stack trace.
import { chmod, readdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import t from 'tap';
import { assertOneLineError, baseEnv, cliFixture, runCli, tempDir } from './fixtures/cli.js';

/** A port nothing listens on: bind, note it, close. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

t.test('exit codes against a real server', async (t) => {
  const f = await cliFixture(t);
  const key = path.join(f.dir, 'k.key');
  const wrong = path.join(f.dir, 'wrong.key');
  await f.cli(['keygen', '--out', key]);
  await f.cli(['keygen', '--out', wrong]);
  const env = { S3CRYPTFS_KEY_FILE: key };

  // 9: not initialised (before init), then already initialised
  assertOneLineError(t, await f.cli(['ls', f.url()], { env }), 9, /not|no s3cryptfs store/);
  t.equal((await f.cli(['init', f.url()], { env })).code, 0);
  assertOneLineError(t, await f.cli(['init', f.url()], { env }), 9);
  await f.cli(['put', '-', f.url('secret.txt')], { env, input: 'top secret contents' });

  // 3: wrong key
  const r3 = await f.cli(['cat', f.url('secret.txt'), '--key-file', wrong], { env });
  assertOneLineError(t, r3, 3, /wrong key/);
  t.equal(r3.stdout, '', 'nothing on stdout');

  // 4: bucket missing
  assertOneLineError(t, await f.cli(['ls', 's3://no-such-bucket-here/'], { env }), 4, /bucket does not exist/);
  assertOneLineError(t, await f.cli(['init', 's3://no-such-bucket-here/'], { env }), 4);

  // 5: endpoint unreachable (closed port)
  const port = await closedPort();
  const r5 = await f.cli(['ls', f.url(), '--endpoint', `http://127.0.0.1:${port}`], { env });
  assertOneLineError(t, r5, 5, /cannot connect/);

  // 6: credentials rejected
  assertOneLineError(t, await f.cli(['ls', f.url()], { env: { ...env, AWS_ACCESS_KEY_ID: 'NOT-S3RVER' } }), 6, /credentials/);

  // 8: object not found
  assertOneLineError(t, await f.cli(['cat', f.url('nope.txt')], { env }), 8, /nope\.txt/);
  assertOneLineError(t, await f.cli(['get', f.url('nope.txt'), 'x'], { env }), 8);

  // 12: key source problems
  await chmod(key, 0o644);
  assertOneLineError(t, await f.cli(['ls', f.url()], { env }), 12, /chmod 600/);
  await chmod(key, 0o600);
  assertOneLineError(t, await f.cli(['ls', f.url()]), 12, /no key given/);
  assertOneLineError(t, await f.cli(['ls', f.url(), '--key-file', path.join(f.dir, 'missing.key')]), 12, /no such file/);
  assertOneLineError(t, await f.cli(['ls', f.url(), '--key-file', key, '--passphrase-file', key]), 12, /only one key source/);
  assertOneLineError(t, await f.cli(['ls', f.url(), '--key-file', 'memkey://host/k']), 12, /only on a local Unix socket/);
  assertOneLineError(t, await f.cli(['ls', f.url()], { env: { S3CRYPTFS_KEY: 'short' } }), 12, /32-byte key/);

  // 2: bad endpoint flag
  assertOneLineError(t, await f.cli(['ls', f.url(), '--endpoint', 'ftp://x'], { env }), 2, /http/);
});

t.test('tampered object: verify exits 7 and get leaves no partial file', async (t) => {
  const f = await cliFixture(t);
  const key = path.join(f.dir, 'k.key');
  await f.cli(['keygen', '--out', key]);
  const env = { S3CRYPTFS_KEY_FILE: key };
  await f.cli(['init', f.url(), '--chunk-size', '4K'], { env });
  await writeFile(path.join(f.dir, 'data.bin'), Buffer.alloc(50_000, 7));
  await f.cli(['put', 'data.bin', f.url('a/data.bin')], { env });
  await f.cli(['put', '-', f.url('ok.txt')], { env, input: 'fine' });
  t.equal((await f.cli(['verify', f.url()], { env })).code, 0);

  // Flip one ciphertext bit in the middle of the object, in place.
  const objects = (await f.store.list(f.bucket, {})).objects.filter((o) => o.size > 40_000);
  t.equal(objects.length, 1);
  const victim = objects[0].key;
  const { body, info } = await f.store.getObject(f.bucket, victim);
  body[20_000] ^= 0x01;
  await f.store.put(f.bucket, victim, body, { metadata: info.metadata, contentType: info.contentType });

  const v = await f.cli(['verify', f.url()], { env });
  t.equal(v.code, 7, 'verify exits 7');
  t.match(v.stdout, /FAILED a\/data\.bin: integrity check failed/);
  t.match(v.stdout, /verified 1 object\(s\).*1 failed/);

  const g = await f.cli(['get', f.url('a/data.bin'), 'out.bin'], { env });
  assertOneLineError(t, g, 7, /integrity check failed/);
  t.same((await readdir(f.dir)).filter((n) => n.startsWith('out.bin') || n.includes('s3cryptfs-part')), [], 'no partial output');

  // A foreign object dropped into the store counts as a failure too.
  await f.store.put(f.bucket, 'not-ours', Buffer.from('plain junk'));
  const v2 = await f.cli(['verify', f.url()], { env });
  t.equal(v2.code, 7);
  t.match(v2.stdout, /FAILED s3:\/\/.*\/not-ours/);
});

t.test('no server needed: unreachable endpoint from the environment', async (t) => {
  const dir = await tempDir(t);
  const port = await closedPort();
  const r = await runCli(['ls', 's3://bucket/'], {
    env: { ...baseEnv(dir), AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y', AWS_ENDPOINT_URL_S3: `http://localhost:${port}` },
  });
  assertOneLineError(t, r, 5);
});
