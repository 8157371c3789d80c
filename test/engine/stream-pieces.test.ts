// streamPieces: a Readable's pieces exactly as pushed (for await would join what is buffered),
// with backpressure, errors and early close.
import { PassThrough, Readable, Transform } from 'node:stream';
import t from 'tap';

import { streamPieces } from '../../src/engine/stream-pieces.js';

t.test('pieces come as pushed, never joined, even when several wait', async (t) => {
  const pushed = Array.from({ length: 20 }, (_, i) => Buffer.alloc(100 + i, i));
  const s = new PassThrough();
  for (const p of pushed) s.write(p);
  s.end();
  const got: Buffer[] = [];
  for await (const p of streamPieces(s)) got.push(p);
  t.equal(got.length, pushed.length, 'one piece per write');
  got.forEach((p, i) => t.ok(p.equals(pushed[i]!), `piece ${i} exact`));
});

t.test('the stream is paused while highWater bytes wait, and resumed as they are taken', async (t) => {
  let produced = 0;
  const s = new Readable({
    highWaterMark: 16,
    read() {
      if (produced >= 64) return void this.push(null);
      produced++;
      this.push(Buffer.alloc(1024, produced));
    },
  });
  const it = streamPieces(s, 8 * 1024);
  const first = await it.next();
  t.equal(first.done, false);
  await new Promise((r) => setTimeout(r, 50));
  t.ok(produced < 20, `the producer was held back (${produced} pieces made while the consumer waited)`);
  let n = 1;
  for await (const p of it) {
    t.equal(p.length, 1024);
    n++;
  }
  t.equal(n, 64, 'every piece arrives');
});

t.test('an error after some pieces is thrown after them', async (t) => {
  const s = new PassThrough();
  s.write(Buffer.from('abc'));
  setTimeout(() => s.destroy(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })), 10);
  const got: string[] = [];
  await t.rejects((async () => { for await (const p of streamPieces(s)) got.push(p.toString()); })(), { code: 'ECONNRESET' });
  t.same(got, ['abc']);
});

t.test('a stream closed before its end is an error, not a short success', async (t) => {
  const s = new PassThrough();
  s.write(Buffer.from('abc'));
  setTimeout(() => s.destroy(), 10);
  await t.rejects((async () => { for await (const p of streamPieces(s)) void p; })(), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
});

t.test('a consumer that stops early stops listening and destroys the stream', async (t) => {
  const s = new PassThrough();
  s.write(Buffer.from('a'));
  s.write(Buffer.from('b'));
  for await (const p of streamPieces(s)) {
    t.equal(p.toString(), 'a');
    break;
  }
  t.equal(s.listenerCount('data'), 0, 'no data listener left');
  t.ok(s.destroyed, 'destroyed');
});

t.test('a consumer that stops after the stream was paused: it had resumed, and is destroyed', async (t) => {
  const s = new PassThrough({ readableHighWaterMark: 1024 * 1024 });
  for (let i = 0; i < 10; i++) s.write(Buffer.alloc(10, i));
  let n = 0;
  for await (const p of streamPieces(s, 30)) {
    t.equal(p[0], n, `piece ${n} in order`);
    if (++n === 6) break;
  }
  t.equal(n, 6, 'read past the point where it had paused');
  t.ok(s.destroyed);
});

t.test('a Transform: its readable end is enough (the writable side is not waited for)', async (t) => {
  const tr = new Transform({ transform: (c, _e, cb) => cb(null, c) });
  Readable.from([Buffer.from('ab'), Buffer.from('cd')]).pipe(tr);
  const got: string[] = [];
  for await (const p of streamPieces(tr)) got.push(p.toString());
  t.same(got, ['ab', 'cd']);
});
