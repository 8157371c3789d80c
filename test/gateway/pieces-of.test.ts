import { PassThrough, Readable, Transform } from 'node:stream';
import t from 'tap';

import { piecesOf } from '../../src/gateway/pieces.js';

t.test('pieces come out as they were pushed, never joined, even when the consumer lags', async (t) => {
  const pushed = Array.from({ length: 12 }, (_, i) => Buffer.alloc(1000 + i, i));
  const s = new PassThrough({ readableHighWaterMark: 256 * 1024 });
  for (const p of pushed) s.write(p); // all buffered before anyone reads
  s.end();
  const got: Buffer[] = [];
  for await (const p of piecesOf(s)) {
    got.push(p);
    await new Promise((r) => setTimeout(r, 1));
  }
  t.equal(got.length, pushed.length, 'one piece per push');
  got.forEach((p, i) => t.ok(p.equals(pushed[i]), `piece ${i}`));
});

t.test('a Transform: its readable end is enough (the writable side is not waited for)', async (t) => {
  const tr = new Transform({ transform: (c, _e, cb) => cb(null, c) });
  Readable.from([Buffer.from('ab'), Buffer.from('cd')]).pipe(tr);
  const got: string[] = [];
  for await (const p of piecesOf(tr)) got.push(p.toString());
  t.same(got, ['ab', 'cd']);
});

t.test('an error ends the iteration with that error', async (t) => {
  const s = new PassThrough();
  s.write(Buffer.from('x'));
  setTimeout(() => s.destroy(new Error('chunk 3 failed authentication')), 5);
  const got: string[] = [];
  await t.rejects(async () => {
    for await (const p of piecesOf(s)) got.push(p.toString());
  }, /authentication/);
  t.same(got, ['x'], 'pieces before the error were delivered');
});

t.test('a close before the end is an error, not a short success', async (t) => {
  const s = new PassThrough();
  s.write(Buffer.from('x'));
  setTimeout(() => s.destroy(), 5);
  await t.rejects(async () => {
    for await (const _ of piecesOf(s)) {
      // reading
    }
  });
});

t.test('a consumer that stops early destroys the stream; a paused stream resumes', async (t) => {
  const s = new PassThrough({ readableHighWaterMark: 1024 * 1024 });
  for (let i = 0; i < 10; i++) s.write(Buffer.alloc(10, i));
  let n = 0;
  for await (const _ of piecesOf(s)) if (++n === 6) break;
  t.equal(n, 6, 'read past the point where it had paused');
  t.ok(s.destroyed, 'destroyed');
});
