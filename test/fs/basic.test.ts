import { randomBytes } from 'node:crypto';
import t from 'tap';

import { S_IFDIR, S_IFLNK, S_IFREG } from '../../src/fs/attrs.js';
import { CHUNK, errnoOf, O_APPEND, O_RDONLY, O_RDWR, O_WRONLY, readFile, setupFs, writeFile } from './fixtures/setup.js';

t.test('create, write, read back, stat', async (t) => {
  const { fs, engine } = await setupFs(t);
  for (const size of [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5]) {
    const data = randomBytes(size);
    await writeFile(fs, `/f${size}`, data, 4096 + 3);
    t.ok((await readFile(fs, `/f${size}`)).equals(data), `${size} bytes round-trip`);
    const st = await fs.getattr(`/f${size}`);
    t.equal(st.size, size);
    t.equal(st.mode, S_IFREG | 0o644);
    t.ok((await engine.getBuffer(`f${size}`)).equals(data), 'stored through the engine');
  }
  const root = await fs.getattr('/');
  t.equal(root.mode & S_IFDIR, S_IFDIR);
  t.equal(await errnoOf(fs.getattr('/missing')), 'ENOENT');
  t.equal(await errnoOf(fs.open('/missing', O_RDONLY)), 'ENOENT');
});

t.test('a created file is visible before its first flush, and empty files persist', async (t) => {
  const { fs, another } = await setupFs(t);
  const fh = await fs.create('/new', 0o600);
  t.equal((await fs.getattr('/new')).size, 0);
  t.ok((await fs.readdir('/')).some((e) => e.name === 'new'), 'listed while open');
  await fs.write('/new', fh, Buffer.from('abc'), 0);
  t.equal((await fs.getattr('/new')).size, 3, 'size follows writes');
  t.equal((await fs.read('/new', fh, 10, 0)).toString(), 'abc', 'reads see unflushed data');
  await fs.flush('/new', fh);
  await fs.release('/new', fh);
  const other = await another();
  t.equal((await readFile(other, '/new')).toString(), 'abc', 'another mount sees it after close');
  t.equal((await other.getattr('/new')).mode & 0o7777, 0o600, 'mode persisted');

  const e = await fs.create('/empty', 0o644);
  await fs.flush('/empty', e);
  await fs.release('/empty', e);
  t.equal((await (await another()).getattr('/empty')).size, 0, 'empty file exists in the bucket');
});

t.test('overwrite in the middle, append, truncate up and down', async (t) => {
  const { fs, another } = await setupFs(t);
  const data = randomBytes(3 * CHUNK + 100);
  await writeFile(fs, '/f', data);
  const ref = Buffer.from(data);

  let fh = await fs.open('/f', O_WRONLY);
  await fs.write('/f', fh, Buffer.from('MIDDLE'), CHUNK + 10);
  Buffer.from('MIDDLE').copy(ref, CHUNK + 10);
  await fs.flush('/f', fh);
  await fs.release('/f', fh);
  t.ok((await readFile(fs, '/f')).equals(ref), 'notrunc overwrite');

  fh = await fs.open('/f', O_WRONLY | O_APPEND);
  await fs.write('/f', fh, Buffer.from('TAIL'), ref.length);
  await fs.flush('/f', fh);
  await fs.release('/f', fh);
  const appended = Buffer.concat([ref, Buffer.from('TAIL')]);
  t.ok((await readFile(fs, '/f')).equals(appended), 'append');

  await fs.truncate('/f', 10);
  t.equal((await fs.getattr('/f')).size, 10);
  t.ok((await readFile(fs, '/f')).equals(appended.subarray(0, 10)), 'truncate down');
  await fs.truncate('/f', CHUNK * 2);
  const up = Buffer.alloc(CHUNK * 2);
  appended.copy(up, 0, 0, 10);
  t.ok((await readFile(fs, '/f')).equals(up), 'truncate up: zeros');
  t.ok((await readFile(await another(), '/f')).equals(up), 'durable');

  // ftruncate(0) after open, then sequential rewrite (what `>` does).
  fh = await fs.open('/f', O_WRONLY);
  await fs.ftruncate('/f', fh, 0);
  await fs.write('/f', fh, Buffer.from('fresh'), 0);
  await fs.flush('/f', fh);
  await fs.release('/f', fh);
  t.equal((await readFile(fs, '/f')).toString(), 'fresh');
});

t.test('O_RDWR: reads after writes see the writes', async (t) => {
  const { fs } = await setupFs(t);
  const fh = await fs.create('/rw', 0o644);
  const a = randomBytes(100_000);
  await fs.write('/rw', fh, a, 0);
  t.ok((await fs.read('/rw', fh, a.length, 0)).equals(a));
  await fs.write('/rw', fh, Buffer.from('xyz'), 5);
  a.write('xyz', 5);
  t.ok((await fs.read('/rw', fh, a.length, 0)).equals(a));
  await fs.release('/rw', fh);
  t.ok((await readFile(fs, '/rw')).equals(a), 'release uploads');
  const fh2 = await fs.open('/rw', O_RDWR);
  t.ok((await fs.read('/rw', fh2, 10, 0)).equals(a.subarray(0, 10)));
  await fs.write('/rw', fh2, Buffer.from('Q'), 0);
  t.equal((await fs.read('/rw', fh2, 2, 0)).toString('latin1')[0], 'Q');
  await fs.release('/rw', fh2);
});

t.test('directories: mkdir, readdir, rmdir, ENOTEMPTY, empty dirs persist', async (t) => {
  const { fs, another } = await setupFs(t);
  await fs.mkdir('/d', 0o755);
  await fs.mkdir('/d/e', 0o700);
  t.equal(await errnoOf(fs.mkdir('/d', 0o755)), 'EEXIST');
  t.equal(await errnoOf(fs.mkdir('/nope/x', 0o755)), 'ENOENT');
  await writeFile(fs, '/d/file', Buffer.from('x'));
  t.equal(await errnoOf(fs.mkdir('/d/file/sub', 0o755)), 'ENOTDIR');
  const names = (await fs.readdir('/d')).map((e) => e.name).sort();
  t.same(names, ['.', '..', 'e', 'file']);
  const entries = await fs.readdir('/d');
  t.equal(entries.find((e) => e.name === 'e')!.stat.mode & S_IFDIR, S_IFDIR, 'd_type dir');
  t.equal(entries.find((e) => e.name === 'file')!.stat.mode & S_IFREG, S_IFREG, 'd_type file');
  const other = await another();
  t.equal((await other.getattr('/d/e')).mode & S_IFDIR, S_IFDIR, 'empty dir persists');
  t.equal(await errnoOf(fs.rmdir('/d')), 'ENOTEMPTY');
  t.equal(await errnoOf(fs.rmdir('/d/file')), 'ENOTDIR');
  t.equal(await errnoOf(fs.unlink('/d')), 'EISDIR');
  await fs.unlink('/d/file');
  await fs.rmdir('/d/e');
  t.same((await fs.readdir('/d')).map((e) => e.name).sort(), ['.', '..']);
  t.equal((await (await another()).getattr('/d')).mode & S_IFDIR, S_IFDIR, 'dir stays after its last file is removed');
  await fs.rmdir('/d');
  t.equal(await errnoOf(fs.getattr('/d')), 'ENOENT');
  t.equal(await errnoOf((await another()).getattr('/d')), 'ENOENT');
});

t.test('symlinks', async (t) => {
  const { fs, another } = await setupFs(t);
  await fs.symlink('../some/target', '/link');
  const st = await fs.getattr('/link');
  t.equal(st.mode & 0o170000, S_IFLNK);
  t.equal(st.size, '../some/target'.length);
  t.equal(await fs.readlink('/link'), '../some/target');
  const other = await another();
  const entry = (await other.readdir('/')).find((e) => e.name === 'link')!;
  t.equal(entry.stat.mode, 0, 'readdir leaves an unknown empty object untyped (DT_UNKNOWN)');
  t.equal(await other.readlink('/link'), '../some/target');
  const again = (await other.readdir('/')).find((e) => e.name === 'link')!;
  t.equal(again.stat.mode & 0o170000, S_IFLNK, 'typed once its attributes are known');
  t.equal(await errnoOf(fs.readlink('/')), 'EINVAL');
  t.equal(await errnoOf(fs.symlink('x', '/link')), 'EEXIST');
  await fs.unlink('/link');
  t.equal(await errnoOf(fs.getattr('/link')), 'ENOENT');
});

t.test('chmod, chown, utimens persist with ns precision; unsupported ops fail cleanly', async (t) => {
  const { fs, another } = await setupFs(t);
  await writeFile(fs, '/f', Buffer.from('data'));
  await fs.chmod('/f', 0o4751);
  await fs.chown('/f', 1234, 5678);
  await fs.utimens('/f', 1_000_000_123_456_789n, 2_000_000_987_654_321n);
  t.equal((await fs.getattr('/f')).mode & 0o7777, 0o4751, 'visible at once in this mount');
  t.same(await fs.flushAll(), [], 'stored at flushAll (write-back)');
  const other = await another();
  const st = await other.getattr('/f');
  t.equal(st.mode & 0o7777, 0o4751);
  t.equal(st.uid, 1234);
  t.equal(st.gid, 5678);
  t.equal(st.atimeNs, 1_000_000_123_456_789n);
  t.equal(st.mtimeNs, 2_000_000_987_654_321n);
  t.equal((await readFile(other, '/f')).toString(), 'data', 'content unchanged');
  await fs.chown('/f', 0xffffffff, 42);
  await fs.flushAll();
  t.equal((await (await another()).getattr('/f')).uid, 1234, 'uid -1 leaves it');

  // Changed while open: folded into the upload.
  const fh = await fs.open('/f', O_WRONLY);
  await fs.write('/f', fh, Buffer.from('D'), 0);
  await fs.chmod('/f', 0o600);
  await fs.release('/f', fh);
  const st2 = await (await another()).getattr('/f');
  t.equal(st2.mode & 0o7777, 0o600);
  t.equal(st2.gid, 42);

  t.equal(await errnoOf(fs.link('/f', '/g')), 'EPERM');
  t.equal(await errnoOf(fs.mknod('/p', 0o10644, 0)), 'EPERM');
  t.equal(await errnoOf(fs.read('/f', 999, 1, 0)), 'EBADF');
});

t.test('rename: files over existing files, non-empty directories', async (t) => {
  const { fs, another } = await setupFs(t);
  await writeFile(fs, '/a', Buffer.from('AAA'));
  await writeFile(fs, '/b', Buffer.from('BBBBB'));
  t.equal((await readFile(fs, '/b')).toString(), 'BBBBB', 'read before, so its chunks are cached');
  await fs.chmod('/a', 0o640);
  await fs.rename('/a', '/b');
  await fs.flushAll();
  t.equal(await errnoOf(fs.getattr('/a')), 'ENOENT');
  t.equal((await readFile(fs, '/b')).toString(), 'AAA');
  t.equal((await (await another()).getattr('/b')).mode & 0o777, 0o640, 'attributes follow');

  await fs.mkdir('/src', 0o755);
  await fs.mkdir('/src/sub', 0o755);
  await fs.mkdir('/src/empty', 0o755);
  await writeFile(fs, '/src/x', Buffer.from('x'));
  await writeFile(fs, '/src/sub/y', Buffer.from('y'));
  await fs.symlink('x', '/src/l');
  await fs.rename('/src', '/dst');
  t.equal(await errnoOf(fs.getattr('/src')), 'ENOENT');
  const other = await another();
  t.equal((await readFile(other, '/dst/x')).toString(), 'x');
  t.equal((await readFile(other, '/dst/sub/y')).toString(), 'y');
  t.equal(await other.readlink('/dst/l'), 'x');
  t.equal((await other.getattr('/dst/empty')).mode & S_IFDIR, S_IFDIR);
  t.equal(await errnoOf(other.getattr('/src')), 'ENOENT');
  t.equal(await errnoOf(other.getattr('/src/sub/y')), 'ENOENT');

  await fs.mkdir('/full', 0o755);
  await writeFile(fs, '/full/z', Buffer.from('z'));
  t.equal(await errnoOf(fs.rename('/dst', '/full')), 'ENOTEMPTY');
  t.equal(await errnoOf(fs.rename('/dst', '/b')), 'ENOTDIR');
  t.equal(await errnoOf(fs.rename('/b', '/full')), 'EISDIR');
  t.equal(await errnoOf(fs.rename('/dst', '/dst/sub/in')), 'EINVAL');
  await fs.mkdir('/emptytarget', 0o755);
  await fs.rename('/dst', '/emptytarget');
  t.equal((await readFile(fs, '/emptytarget/sub/y')).toString(), 'y', 'rename over an empty dir');
});

t.test('rename of an open file that is still being written', async (t) => {
  const { fs, another } = await setupFs(t);
  const fh = await fs.create('/tmp1', 0o644);
  await fs.write('/tmp1', fh, Buffer.from('hello '), 0);
  await fs.rename('/tmp1', '/final');
  await fs.write('/final', fh, Buffer.from('world'), 6);
  await fs.release('/final', fh);
  t.equal((await readFile(await another(), '/final')).toString(), 'hello world');
  t.equal(await errnoOf((await another()).getattr('/tmp1')), 'ENOENT');
});

t.test('unlink of an open, unflushed file uploads nothing', async (t) => {
  const { fs, another } = await setupFs(t);
  const fh = await fs.create('/scratch', 0o644);
  await fs.write('/scratch', fh, Buffer.from('temp data'), 0);
  await fs.unlink('/scratch');
  t.equal((await fs.read('/scratch', fh, 100, 0)).toString(), 'temp data', 'still readable through the descriptor');
  await fs.release('/scratch', fh);
  t.equal(await errnoOf((await another()).getattr('/scratch')), 'ENOENT');
  t.equal(await errnoOf(fs.getattr('/scratch')), 'ENOENT');
});

t.test('read-only mode', async (t) => {
  const { fs, another } = await setupFs(t);
  await writeFile(fs, '/f', Buffer.from('x'));
  const ro = await another({ readOnly: true });
  t.equal((await readFile(ro, '/f')).toString(), 'x');
  t.equal(await errnoOf(ro.open('/f', O_WRONLY)), 'EROFS');
  t.equal(await errnoOf(ro.create('/g', 0o644)), 'EROFS');
  t.equal(await errnoOf(ro.unlink('/f')), 'EROFS');
  t.equal(await errnoOf(ro.mkdir('/d', 0o755)), 'EROFS');
  t.equal(await errnoOf(ro.chmod('/f', 0o600)), 'EROFS');
});

t.test('names: too long, reserved', async (t) => {
  const { fs } = await setupFs(t, { names: 'plain' });
  t.equal(await errnoOf(fs.create('/' + 'x'.repeat(256), 0o644)), 'ENAMETOOLONG');
  t.equal(await errnoOf(fs.getattr('/' + 'x'.repeat(256))), 'ENAMETOOLONG');
  t.equal(await errnoOf(fs.getattr('/.s3cryptfs.json')), 'ENOENT', 'the config object is hidden');
  t.notOk((await fs.readdir('/')).some((e) => e.name === '.s3cryptfs.json'));
});

t.test('attribute write-back: changes after close are stored after a delay, folded into a rename', async (t) => {
  let copies = 0;
  const { fs, another, engine } = await setupFs(t, {
    fs: { attrWritebackMs: 300 },
    wrapEngine: (e) => new Proxy(e, {
      get(target, prop, receiver) {
        const v = Reflect.get(target, prop, receiver) as unknown;
        if (prop === 'copy') return (...args: Parameters<typeof e.copy>) => { copies++; return e.copy(...args); };
        if (prop === 'setAttributes') return (...args: Parameters<typeof e.setAttributes>) => { copies++; return e.setAttributes(...args); };
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    }),
  });
  await writeFile(fs, '/.tmp.x', Buffer.from('content'), 4096, 0o600);
  await fs.chmod('/.tmp.x', 0o755);
  await fs.utimens('/.tmp.x', 5_000_000_000n, 6_000_000_000n);
  await fs.chmod('/.tmp.x', 0o751);
  await fs.rename('/.tmp.x', '/x');
  t.equal(copies, 1, 'three attribute changes and a rename: one server-side copy');
  const st = await (await another()).getattr('/x');
  t.equal(st.mode & 0o7777, 0o751);
  t.equal(st.mtimeNs, 6_000_000_000n);

  await fs.chmod('/x', 0o700);
  t.equal((await (await another()).getattr('/x')).mode & 0o7777, 0o751, 'not stored yet');
  await new Promise((r) => setTimeout(r, 700));
  t.equal((await (await another()).getattr('/x')).mode & 0o7777, 0o700, 'stored after the delay');
  t.equal(copies, 2);

  await fs.chmod('/x', 0o640);
  const fh = await fs.open('/x', O_RDWR);
  t.equal((await engine.stat('x'))!.attributes['posix:mode'], '640', 'stored before the file is opened again');
  await fs.release('/x', fh);
  const stored = copies;

  // rsync's sequence: utimens of the closed temporary file, chmod through a read-only descriptor,
  // rename. The pending change moves into the open file and back at its close: one copy in all.
  await fs.utimens('/x', 7_000_000_000n, 8_000_000_000n);
  const ro = await fs.open('/x', O_RDONLY);
  await fs.chmod('/x', 0o604);
  await fs.flush('/x', ro);
  await fs.release('/x', ro);
  await fs.rename('/x', '/y');
  t.equal(copies - stored, 1, 'utimens, chmod through a read-only descriptor and rename: one copy');
  const y = await (await another()).getattr('/y');
  t.equal(y.mode & 0o7777, 0o604);
  t.equal(y.mtimeNs, 8_000_000_000n);

  // A read-only descriptor held open does not hold the change back past the delay.
  await fs.chmod('/y', 0o606);
  const held = await fs.open('/y', O_RDONLY);
  await new Promise((r) => setTimeout(r, 700));
  t.equal((await (await another()).getattr('/y')).mode & 0o7777, 0o606, 'stored while the descriptor is still open');
  t.ok((await fs.read('/y', held, 100, 0)).equals(Buffer.from('content')), 'the open descriptor still reads the file');
  await fs.release('/y', held);
  await fs.rename('/y', '/x');

  await fs.chmod('/x', 0o600);
  await fs.unlink('/x');
  await new Promise((r) => setTimeout(r, 500));
  t.equal(await errnoOf((await another()).getattr('/x')), 'ENOENT', 'a pending change does not resurrect an unlinked file');
});
