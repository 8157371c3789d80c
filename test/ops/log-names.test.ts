/**
 * Issue #8: with encrypted names, the mount daemon's output (stderr and the --verbose debug log)
 * never holds a plaintext name, during a workload with an error (a corrupt object read: EIO) and a
 * shutdown that gives up on a file still open for writing (the unmount summary names it).
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Engine } from '../../src/engine/index.js';
import { deriveKeys, HEADER_SIZE } from '../../src/format/index.js';
import { readFile } from 'node:fs/promises';
import { storeFor } from '../helpers/s3server.js';
import { mount, sh, setupStore } from '../e2e/fixtures/mount.js';

t.test('the mount daemon logs no plaintext name when names are encrypted', async (t) => {
  const s = await setupStore(t);
  const store = storeFor(s.server);
  t.teardown(() => store.destroy());
  const engine = await Engine.open({ store, bucket: s.bucket, prefix: '', keys: deriveKeys(Buffer.from((await readFile(s.keyFile, 'utf8')).trim(), 'hex')) });

  const secretDir = 'confidential-dir-' + randomBytes(4).toString('hex');
  const corrupt = 'tampered-file-' + randomBytes(4).toString('hex') + '.bin';
  const held = 'held-open-' + randomBytes(4).toString('hex') + '.txt';
  const plain = [secretDir, corrupt, held];
  await engine.putBuffer(`${secretDir}/${corrupt}`, randomBytes(100_000));
  const key = engine.objectKey(`${secretDir}/${corrupt}`);
  const body = (await store.getObject(s.bucket, key)).body;
  body[HEADER_SIZE + 10] ^= 1;
  await store.put(s.bucket, key, body);

  const m = await mount(t, s, ['--verbose', '--unmount-timeout', '1']);
  let r = await sh(`ls ${JSON.stringify(path.join(m.mnt, secretDir))}`);
  t.match(r.stdout, corrupt, 'the mount shows the plaintext name');
  r = await sh(`cat ${JSON.stringify(path.join(m.mnt, secretDir, corrupt))} > /dev/null`);
  t.match(r.stderr, /Input\/output error/, 'the corrupt object reads as EIO');
  await sh(`cp -r /etc/hostname ${JSON.stringify(path.join(m.mnt, secretDir, 'copied-' + held))}`);
  plain.push('copied-' + held);

  // A writer that keeps its file open past the unmount timeout.
  const holder = spawn('/bin/bash', ['-c', `exec 3>${JSON.stringify(path.join(m.mnt, secretDir, held))}; echo unsaved >&3; sleep 60`], { stdio: 'ignore' });
  t.teardown(() => { holder.kill('SIGKILL'); });
  for (let i = 0; i < 100 && !(await sh(`ls ${JSON.stringify(path.join(m.mnt, secretDir))}`)).stdout.includes(held); i++) await new Promise((res) => setTimeout(res, 50));

  const code = await m.stop('SIGTERM');
  t.not(code, 0, 'giving up on an open file is a non-zero exit');
  const out = m.output();
  t.match(out, /giving up on 1 file\(s\) still open for writing/, 'the unmount summary is there');
  t.match(out, /tamper|integrity|CHUNK|EIO|read/i, 'the read error is logged');
  for (const name of plain) t.notOk(out.includes(name), `no "${name}" in the daemon's output`);
  t.match(out, /s3:[A-Za-z0-9_-]{20,}/, 'files are named by their S3 key (ciphertext) instead');
});
