// Real kernel mount over s3rver: copies, appends, truncation, in-place overwrite, renames, rm -rf,
// tar, concurrent writers and readers, git, and persistence across a remount.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';

import { mount, MiB, run, setupStore, sh, sha256 } from './fixtures/mount.js';

const store = await setupStore(t);
let m = await mount(t, store);
const src = path.join(store.dir, 'src');
await mkdir(src);
const q = JSON.stringify;
/** Files written in this test and their expected sha256, checked again after a remount. */
const expected = new Map<string, string>();

t.test('cp of 0 B, 1 B and sizes around chunk and part boundaries', async (t) => {
  const CHUNK = 64 * 1024;
  const PART = 8 * MiB;
  const sizes = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, PART - 1, PART, PART + 1, 2 * PART + CHUNK + 7];
  for (const size of sizes) {
    const f = path.join(src, `s${size}`);
    await run(`head -c ${size} /dev/urandom > ${q(f)}`);
    await run(`cp ${q(f)} ${q(path.join(m.mnt, `s${size}`))}`);
    const want = await sha256(f);
    t.equal(await sha256(path.join(m.mnt, `s${size}`)), want, `${size} bytes`);
    expected.set(`s${size}`, want);
  }
  const ls = await run(`ls -l ${q(m.mnt)}`);
  t.match(ls, /s0\n/, 'listed');
  t.equal((await run(`stat -c %s ${q(path.join(m.mnt, `s${PART + 1}`))}`)).trim(), String(PART + 1));
});

t.test('a 300 MiB file', async (t) => {
  const f = path.join(src, 'big');
  await run(`head -c ${300 * MiB} /dev/urandom > ${q(f)}`);
  const want = await sha256(f);
  const started = Date.now();
  await run(`cp ${q(f)} ${q(path.join(m.mnt, 'big'))}`);
  const wrote = Date.now();
  t.equal(await sha256(path.join(m.mnt, 'big')), want, 'sha256 matches');
  t.comment(`300 MiB: write ${((300 * MiB) / 1e6 / ((wrote - started) / 1000)).toFixed(0)} MB/s, read ${((300 * MiB) / 1e6 / ((Date.now() - wrote) / 1000)).toFixed(0)} MB/s`);
  expected.set('big', want);
  await run(`rm ${q(f)}`);
});

t.test('append with >>, truncate up and down, dd conv=notrunc', async (t) => {
  const f = path.join(m.mnt, 'edit.txt');
  await run(`printf 'line1\\n' > ${q(f)}`);
  await run(`printf 'line2\\n' >> ${q(f)}`);
  await run(`printf 'line3\\n' >> ${q(f)}`);
  t.equal(await run(`cat ${q(f)}`), 'line1\nline2\nline3\n', 'appends');
  await run(`truncate -s 8 ${q(f)}`);
  t.equal(await run(`cat ${q(f)}`), 'line1\nli', 'truncated down');
  await run(`truncate -s 20 ${q(f)}`);
  t.equal(await run(`od -An -c ${q(f)} | tr -s ' '`), (await run(`printf 'line1\\nli' | head -c 8; head -c 12 /dev/zero`).then(() => run(`(printf 'line1\\nli'; head -c 12 /dev/zero) | od -An -c | tr -s ' '`))), 'truncated up with zeros');
  t.equal((await run(`stat -c %s ${q(f)}`)).trim(), '20');

  // In-place overwrite in the middle of a larger file.
  const big = path.join(src, 'mid.bin');
  await run(`head -c ${5 * MiB + 123} /dev/urandom > ${q(big)}`);
  await run(`cp ${q(big)} ${q(path.join(m.mnt, 'mid.bin'))}`);
  const patch = `dd if=/dev/urandom of=PATCH bs=4096 count=3 2>/dev/null; dd if=PATCH of=TARGET bs=1 seek=1000003 conv=notrunc 2>/dev/null`;
  await run(patch.replace(/PATCH/g, q(path.join(src, 'patch'))).replace('TARGET', q(big)));
  await run(`dd if=${q(path.join(src, 'patch'))} of=${q(path.join(m.mnt, 'mid.bin'))} bs=1 seek=1000003 conv=notrunc 2>/dev/null`);
  const want = await sha256(big);
  t.equal(await sha256(path.join(m.mnt, 'mid.bin')), want, 'dd conv=notrunc patch matches the local copy');
  expected.set('mid.bin', want);
  t.equal((await run(`stat -c %s ${q(path.join(m.mnt, 'mid.bin'))}`)).trim(), String(5 * MiB + 123), 'size unchanged');
});

t.test('rename over an existing file and of a non-empty directory; rm -rf', async (t) => {
  await run(`cd ${q(m.mnt)} && echo old > target && echo new > source && mv source target`);
  t.equal(await run(`cat ${q(path.join(m.mnt, 'target'))}`), 'new\n');
  t.equal((await sh(`ls ${q(path.join(m.mnt, 'source'))}`)).code, 2, 'source is gone');
  await run(`cd ${q(m.mnt)} && mkdir -p tree/a/b && echo 1 > tree/one && echo 2 > tree/a/two && echo 3 > tree/a/b/three && ln -s ../one tree/a/link && mkdir tree/empty`);
  await run(`cd ${q(m.mnt)} && mv tree moved`);
  t.equal(await run(`cd ${q(m.mnt)} && cat moved/one moved/a/two moved/a/b/three moved/a/link`), '1\n2\n3\n1\n');
  t.equal(await run(`cd ${q(m.mnt)} && find moved | sort`), ['moved', 'moved/a', 'moved/a/b', 'moved/a/b/three', 'moved/a/link', 'moved/a/two', 'moved/empty', 'moved/one'].join('\n') + '\n');
  t.equal((await sh(`ls ${q(path.join(m.mnt, 'tree'))}`)).code, 2, 'old name is gone');
  await run(`cd ${q(m.mnt)} && mkdir other && mv moved other/ && test -f other/moved/a/b/three`);
  await run(`rm -rf ${q(path.join(m.mnt, 'other'))}`);
  t.equal((await sh(`ls ${q(path.join(m.mnt, 'other'))}`)).code, 2, 'rm -rf removed everything');
});

t.test('tar create and extract inside the mount', async (t) => {
  await run(`mkdir -p ${q(src)}/tarsrc/d1/d2 && cd ${q(src)}/tarsrc && for i in $(seq 1 50); do head -c $((i * 997)) /dev/urandom > d1/f$i; done && echo hi > d1/d2/x && ln -s d1/d2/x sl && chmod 750 d1/f7`);
  await run(`tar -C ${q(src)} -cf ${q(path.join(m.mnt, 'a.tar'))} tarsrc`);
  await run(`mkdir ${q(path.join(m.mnt, 'x'))} && tar -C ${q(path.join(m.mnt, 'x'))} -xf ${q(path.join(m.mnt, 'a.tar'))}`);
  const d = await sh(`diff -r ${q(path.join(src, 'tarsrc'))} ${q(path.join(m.mnt, 'x/tarsrc'))}`);
  t.equal(d.code, 0, `diff -r after extract: ${d.stdout}${d.stderr}`);
  t.equal((await run(`stat -c %a ${q(path.join(m.mnt, 'x/tarsrc/d1/f7'))}`)).trim(), '750', 'mode restored');
  t.equal((await run(`readlink ${q(path.join(m.mnt, 'x/tarsrc/sl'))}`)).trim(), 'd1/d2/x');
  await run(`cd ${q(m.mnt)} && tar -cf ${q(path.join(src, 'back.tar'))} x`);
  t.ok((await run(`tar -tf ${q(path.join(src, 'back.tar'))}`)).includes('x/tarsrc/d1/f50'), 'tar create reads the tree back');
});

t.test('concurrent writers to different files, concurrent readers of one file', async (t) => {
  const N = 8;
  const writes = Array.from({ length: N }, (_, i) => run(`head -c ${(i + 1) * 1_300_000} /dev/urandom | tee ${q(path.join(src, `c${i}`))} > ${q(path.join(m.mnt, `c${i}`))}`));
  await Promise.all(writes);
  for (let i = 0; i < N; i++) t.equal(await sha256(path.join(m.mnt, `c${i}`)), await sha256(path.join(src, `c${i}`)), `writer ${i}`);
  const want = expected.get('big')!;
  const reads = await Promise.all(Array.from({ length: 4 }, () => sha256(path.join(m.mnt, 'big'))));
  t.same(reads, [want, want, want, want], 'four readers of the 300 MiB file');
});

t.test('git init, add, commit inside the mount', async (t) => {
  const repo = path.join(m.mnt, 'repo');
  const git = `git -c user.name=t -c user.email=t@example.com -c init.defaultBranch=main`;
  await run(`mkdir ${q(repo)} && cd ${q(repo)} && ${git} init -q && for i in $(seq 1 20); do echo "file $i" > f$i.txt; done && mkdir sub && echo deep > sub/deep.txt`);
  await run(`cd ${q(repo)} && ${git} add -A && ${git} commit -qm first`);
  await run(`cd ${q(repo)} && echo change >> f1.txt && git mv f2.txt renamed.txt && ${git} commit -qam second`);
  t.equal((await run(`cd ${q(repo)} && git log --oneline | wc -l`)).trim(), '2');
  t.equal((await run(`cd ${q(repo)} && git status --porcelain`)).trim(), '', 'clean work tree');
  const fsck = await sh(`cd ${q(repo)} && git fsck --strict`);
  t.equal(fsck.code, 0, `git fsck: ${fsck.stderr}`);
  t.equal(await run(`cd ${q(repo)} && git show HEAD:f1.txt`), 'file 1\nchange\n');
});

t.test('everything is still there after a remount', async (t) => {
  t.equal(await m.stop(), 0, 'clean exit on SIGTERM');
  m = await mount(t, store);
  for (const [name, want] of expected) t.equal(await sha256(path.join(m.mnt, name)), want, name);
  t.equal(await run(`cat ${q(path.join(m.mnt, 'edit.txt'))} | head -c 8`), 'line1\nli');
  t.equal((await run(`cd ${q(path.join(m.mnt, 'repo'))} && git log --oneline | wc -l`)).trim(), '2', 'git history');
});
