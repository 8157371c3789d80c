import t from 'tap';
import { randomBytes } from 'node:crypto';

import { CHUNK, setupEngine } from './fixtures/setup.js';

t.test('list: names, sizes, dirs; markers and config hidden', async (t) => {
  const { engine, store, bucket } = await setupEngine(t);
  await engine.putBuffer('a.txt', Buffer.from('hello'));
  await engine.putBuffer('b.bin', randomBytes(CHUNK + 1));
  await engine.putBuffer('docs/x.md', Buffer.from('# x'));
  await engine.putBuffer('docs/deep/y.md', Buffer.alloc(0));
  await engine.mkdirMarker('empty');
  await engine.mkdirMarker('docs');
  t.ok(await store.head(bucket, 'vault/.s3cryptfs.json'), 'config object exists');

  const root = await engine.list('');
  t.same(root.files.map((f) => [f.path, f.size]).sort(), [['a.txt', 5], ['b.bin', CHUNK + 1]]);
  t.same(root.dirs.sort(), ['docs/', 'empty/']);
  t.equal(root.nextToken, undefined);
  t.ok(root.files.every((f) => f.etag && f.lastModified instanceof Date));

  const docs = await engine.list('docs/');
  t.same(docs.files.map((f) => f.path), ['docs/x.md'], 'own marker hidden');
  t.same(docs.dirs, ['docs/deep/']);
  t.same(await engine.list('empty'), { files: [], dirs: [] }, 'empty dir lists empty');

  const all = await engine.list('', { recursive: true });
  t.same(all.files.map((f) => f.path).sort(), ['a.txt', 'b.bin', 'docs/deep/y.md', 'docs/x.md']);
  t.same(all.dirs.sort(), ['docs/', 'empty/'], 'recursive listings report directory markers');

  t.equal(await engine.dirExists('docs'), true);
  t.equal(await engine.dirExists('docs/deep'), true, 'implicit directory');
  t.equal(await engine.dirExists('empty'), true, 'marker only');
  t.equal(await engine.dirExists('nope'), false);
  await engine.removeDirMarker('empty');
  t.equal(await engine.dirExists('empty'), false);
});

t.test('paging with more objects than maxKeys', async (t) => {
  const { engine } = await setupEngine(t);
  const names = Array.from({ length: 23 }, (_, i) => `many/f${String(i).padStart(2, '0')}`);
  for (let i = 0; i < names.length; i += 8) {
    await Promise.all(names.slice(i, i + 8).map((n, j) => engine.putBuffer(n, Buffer.alloc(i + j, 7))));
  }
  const seen: { path: string; size: number }[] = [];
  let pages = 0;
  for await (const page of engine.listAll('many', { maxKeys: 5 })) {
    pages++;
    t.ok(page.files.length <= 5);
    seen.push(...page.files.map((f) => ({ path: f.path, size: f.size })));
  }
  t.equal(pages, 5);
  t.same(seen.sort((a, b) => a.path.localeCompare(b.path)), names.map((path, i) => ({ path, size: i })));
  // manual paging with the token
  const first = await engine.list('many', { maxKeys: 20 });
  t.equal(first.files.length, 20);
  t.type(first.nextToken, 'string');
  const second = await engine.list('many', { maxKeys: 20, token: first.nextToken });
  t.equal(second.files.length, 3);
  t.equal(second.nextToken, undefined);
});

t.test('copy, rename, setAttributes, delete, deleteMany', async (t) => {
  const { engine, store, bucket } = await setupEngine(t);
  const data = randomBytes(3 * CHUNK + 5);
  await engine.putBuffer('src/one.bin', data, { attributes: { mode: '0640' } });
  const fetchedBefore = engine.stats.bytesFetched;
  await engine.copy('src/one.bin', 'dst/copy.bin');
  t.equal(engine.stats.bytesFetched, fetchedBefore, 'copy moves no data through the engine');
  t.ok((await engine.getBuffer('dst/copy.bin')).equals(data));
  t.same((await engine.stat('dst/copy.bin'))?.attributes, { mode: '0640' }, 'attributes re-sealed for the new key');
  const rawSrc = await store.getObject(bucket, engine.objectKey('src/one.bin'));
  const rawDst = await store.getObject(bucket, engine.objectKey('dst/copy.bin'));
  t.ok(rawSrc.body.equals(rawDst.body), 'ciphertext copied as is');

  await engine.copy('src/one.bin', 'dst/attrs.bin', { attributes: { mode: '0600', uid: '7' } });
  t.same((await engine.stat('dst/attrs.bin'))?.attributes, { mode: '0600', uid: '7' });

  await engine.rename('dst/copy.bin', 'dst/renamed.bin');
  t.equal(await engine.stat('dst/copy.bin'), null, 'source gone');
  t.ok((await engine.getBuffer('dst/renamed.bin')).equals(data));
  t.same((await engine.stat('dst/renamed.bin'))?.attributes, { mode: '0640' });

  await engine.setAttributes('dst/renamed.bin', { mode: '0444', mtime: '1700000000' });
  t.same((await engine.stat('dst/renamed.bin'))?.attributes, { mode: '0444', mtime: '1700000000' });
  t.ok((await engine.getBuffer('dst/renamed.bin')).equals(data), 'content unchanged');

  await t.rejects(engine.copy('missing', 'x'), { code: 'NOT_FOUND' });

  await engine.delete('src/one.bin');
  t.equal(await engine.stat('src/one.bin'), null);
  const res = await engine.deleteMany(['dst/attrs.bin', 'dst/renamed.bin']);
  t.same(res.errors, []);
  t.same((await engine.list('', { recursive: true })).files, []);
});

t.test('prefix "" uses the whole bucket', async (t) => {
  const { engine, store, bucket } = await setupEngine(t, { prefix: '' });
  await engine.putBuffer('top.txt', Buffer.from('top'));
  t.ok(await store.head(bucket, '.s3cryptfs.json'));
  t.same((await engine.list('')).files.map((f) => f.path), ['top.txt']);
});
