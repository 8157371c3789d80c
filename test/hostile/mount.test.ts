// Hostile operations on a real kernel mount (s3cryptfs mount over s3rver, encrypted names): names too
// long once encrypted, hard links, device nodes, FIFOs, sockets. Each fails with an errno (never
// succeeds half-way or hangs) and the daemon keeps serving.
import t from 'tap';
import { execFile } from 'node:child_process';
import path from 'node:path';

import { mount, setupStore, sh } from '../e2e/fixtures/mount.js';

const store = await setupStore(t, { names: 'aes-siv' });
const m = await mount(t, store);
const q = JSON.stringify;
const py = (code: string) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile('python3', ['-c', code], { timeout: 30_000 }, (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr })),
  );

/** Runs an os call in python and prints "ok" or the errno name. */
async function errnoOf(call: string): Promise<string> {
  const r = await py(`import os, errno\ntry:\n    ${call}\n    print('ok')\nexcept OSError as e:\n    print(errno.errorcode[e.errno])`);
  return r.stdout.trim() || `exit ${r.code}: ${r.stderr.trim().slice(-200)}`;
}

t.test('a path too long once encrypted is ENAMETOOLONG, one just under the limit works', async (t) => {
  // s3rver keeps each key segment as a file name (plus a ~22-byte suffix, 255 bytes at most), so stay at 150-byte names:
  // 222 bytes each once encrypted. 4 levels are an 891-byte key; a 5th level passes 1024 bytes.
  const seg = 'd'.repeat(150);
  const four = path.join(m.mnt, seg, seg, seg, seg);
  t.equal(await errnoOf(`os.makedirs(${q(path.dirname(four))})`), 'ok', 'three levels');
  t.equal(await errnoOf(`open(${q(four)}, 'w').write('x')`), 'ok', 'an 891-byte encrypted key is accepted');
  t.equal((await sh(`cat ${q(four)}`)).stdout, 'x');
  t.equal(await errnoOf(`os.mkdir(${q(path.join(four + '-dir'))})`), 'ok', 'a fourth directory level');
  // create() itself checks the encrypted key's length, so the failure comes before any data is written.
  const tooLong = path.join(four + '-dir', seg);
  const r = await errnoOf(`open(${q(tooLong)}, 'w')`);
  t.equal(r, 'ENAMETOOLONG', 'a short plaintext path whose encrypted key passes 1024 bytes fails at open(O_CREAT)');
  t.match(await errnoOf(`os.stat(${q(tooLong)})`), /^(ENOENT|ENAMETOOLONG)$/, 'and is not there afterwards');
  const r2 = await errnoOf(`os.mkdir(${q(path.join(four + '-dir', seg))})`);
  t.equal(r2, 'ENAMETOOLONG', 'and mkdir there too');
  t.equal(await errnoOf(`open(${q(path.join(m.mnt, 'n'.repeat(256)))}, 'w')`), 'ENAMETOOLONG', 'a 256-byte name');
});

t.test('hard links, device nodes, FIFOs and sockets get an errno', async (t) => {
  await sh(`echo data > ${q(path.join(m.mnt, 'src'))}`);
  for (const [what, call] of [
    ['hard link', `os.link(${q(path.join(m.mnt, 'src'))}, ${q(path.join(m.mnt, 'hl'))})`],
    ['char device', `os.mknod(${q(path.join(m.mnt, 'dev'))}, 0o600 | 0o020000, os.makedev(1, 3))`],
    ['fifo', `os.mkfifo(${q(path.join(m.mnt, 'fifo'))})`],
    ['socket', `import socket; s = socket.socket(socket.AF_UNIX); s.bind(${q(path.join(m.mnt, 'sock'))})`],
  ] as const) {
    const r = await errnoOf(call);
    t.match(r, /^E[A-Z]+$/, `${what}: ${r}`);
  }
  t.equal((await sh(`cat ${q(path.join(m.mnt, 'src'))}`)).stdout, 'data\n', 'the daemon still serves');
});
