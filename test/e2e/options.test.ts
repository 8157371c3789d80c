// Mount options (--read-only, --uid/--gid/--umask, --allow-other, cache TTLs) and two mounts of
// one bucket (close-to-open consistency).
import { chmod } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';

import { mount, run, setupStore, sh } from './fixtures/mount.js';

const q = JSON.stringify;
const store = await setupStore(t);
await chmod(store.dir, 0o755); // so that another user can reach the mount points (--allow-other)
const rw = await mount(t, store, ['--attr-ttl', '1', '--dir-ttl', '1', '--negative-ttl', '1'], 'rw');
await run(`cd ${q(rw.mnt)} && echo hello > f.txt && chmod 666 f.txt && mkdir d`);

t.test('--read-only', async (t) => {
  const ro = await mount(t, store, ['--read-only'], 'ro');
  t.equal(await run(`cat ${q(path.join(ro.mnt, 'f.txt'))}`), 'hello\n', 'reads work');
  const w = await sh(`echo x > ${q(path.join(ro.mnt, 'new.txt'))}`);
  t.not(w.code, 0);
  t.match(w.stderr, /Read-only file system/);
  t.match((await sh(`rm ${q(path.join(ro.mnt, 'f.txt'))}`)).stderr, /Read-only file system/);
  t.match(await run(`grep ${q(ro.mnt)} /proc/mounts`), /\bro\b/, 'mounted ro');
  await ro.stop();
});

t.test('--uid, --gid, --umask', async (t) => {
  const m = await mount(t, store, ['--uid', '1234', '--gid', '2345', '--umask', '027'], 'ids');
  t.equal((await run(`stat -c '%u %g %a' ${q(path.join(m.mnt, 'f.txt'))}`)).trim(), '1234 2345 640');
  t.equal((await run(`stat -c '%u %g %a' ${q(path.join(m.mnt, 'd'))}`)).trim(), '1234 2345 750');
  await m.stop();
});

t.test('--allow-other lets other users in (with permission checks)', async (t) => {
  const asNobody = (cmd: string) => sh(`setpriv --reuid=65534 --regid=65534 --clear-groups /bin/sh -c ${q(cmd)}`);
  const plain = await asNobody(`cat ${q(path.join(rw.mnt, 'f.txt'))}`);
  t.not(plain.code, 0, 'without --allow-other another user is refused');
  const m = await mount(t, store, ['--allow-other'], 'other');
  t.equal((await asNobody(`cat ${q(path.join(m.mnt, 'f.txt'))}`)).stdout, 'hello\n', 'with --allow-other another user can read a 666 file');
  await run(`echo secret > ${q(path.join(m.mnt, 'private.txt'))} && chmod 600 ${q(path.join(m.mnt, 'private.txt'))}`);
  t.match((await asNobody(`cat ${q(path.join(m.mnt, 'private.txt'))}`)).stderr, /Permission denied/, 'but not a 600 file of root');
  await m.stop();
});

t.test('two mounts of one bucket: close-to-open', async (t) => {
  const b = await mount(t, store, ['--attr-ttl', '1', '--dir-ttl', '1', '--negative-ttl', '1'], 'second');
  t.equal(await run(`cat ${q(path.join(b.mnt, 'f.txt'))}`), 'hello\n');
  await run(`echo 'changed in the first mount' > ${q(path.join(rw.mnt, 'f.txt'))}`);
  await run(`echo new > ${q(path.join(rw.mnt, 'born.txt'))}`);
  await new Promise((r) => setTimeout(r, 2100)); // past the 1 s TTLs (ours and the kernel's)
  t.equal(await run(`cat ${q(path.join(b.mnt, 'f.txt'))}`), 'changed in the first mount\n', 'a reopen sees the new content');
  t.ok((await run(`ls ${q(b.mnt)}`)).split('\n').includes('born.txt'), 'a new file shows up in the listing');
  await run(`rm ${q(path.join(rw.mnt, 'born.txt'))}`);
  await new Promise((r) => setTimeout(r, 2100));
  t.equal((await sh(`cat ${q(path.join(b.mnt, 'born.txt'))}`)).code, 1, 'a removed file goes away');
  await b.stop();
});
