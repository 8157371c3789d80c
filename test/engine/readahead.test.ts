// The readahead window policy, against a recorder instead of a store.
import t from 'tap';

import { Readahead } from '../../src/engine/readahead.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK = 128 * KiB;

/** Records prefetch requests; each resolves when release() is called for it (or at once). */
function recorder(chunkTotal: number, holdRequests = false) {
  const requests: [number, number][] = [];
  const pending: (() => void)[] = [];
  return {
    requests,
    releaseAll() { for (const r of pending.splice(0)) r(); },
    target: {
      chunkTotal,
      prefetch(a: number, b: number): Promise<void> {
        requests.push([a, b]);
        if (!holdRequests) return Promise.resolve();
        return new Promise<void>((resolve) => pending.push(resolve));
      },
    },
  };
}

const tick = () => new Promise((r) => setImmediate(r));

t.test('sequential reads grow the window to maxBytes; requests grow with it and stay contiguous', async (t) => {
  const rec = recorder(100_000);
  const ra = new Readahead(rec.target, { chunkSize: CHUNK, maxBytes: 16 * MiB, maxRequestBytes: 4 * MiB });
  const windows: number[] = [];
  for (let off = 0; off < 64 * MiB; off += CHUNK) {
    ra.onRead(off, CHUNK, Math.floor(off / CHUNK));
    windows.push(ra.window);
    await tick();
  }
  t.equal(windows[0], 2, 'starts at 2 chunks');
  t.equal(Math.max(...windows), 16 * MiB / CHUNK, 'grows to maxBytes');
  for (let i = 1; i < windows.length; i++) if (windows[i] < windows[i - 1]) t.fail(`window shrank at read ${i}`);
  // Requested stretches cover [1, requestedUntil) exactly once, in order.
  let expect = 1;
  for (const [a, b] of rec.requests) {
    t.equal(a, expect, `request starts where the previous ended (${a})`);
    t.ok(b >= a, 'non-empty');
    t.ok(b - a + 1 <= 4 * MiB / CHUNK, `request of ${b - a + 1} chunks is at most maxRequestBytes`);
    expect = b + 1;
  }
  const big = rec.requests.filter(([a, b]) => b - a + 1 === 4 * MiB / CHUNK).length;
  t.ok(big >= rec.requests.length / 2, `most requests are the largest size once the window is grown (${big} of ${rec.requests.length})`);
  t.ok(rec.requests.length <= 64 * MiB / MiB, `${rec.requests.length} requests for 64 MiB, not one per chunk`);
});

t.test('a random read resets the window and drops queued requests', async (t) => {
  const rec = recorder(100_000, true);
  const ra = new Readahead(rec.target, { chunkSize: CHUNK, maxBytes: 8 * MiB, maxInFlight: 1, maxRequestBytes: MiB });
  for (let off = 0; off < 8 * MiB; off += CHUNK) ra.onRead(off, CHUNK, Math.floor(off / CHUNK));
  t.ok(ra.window > 2, 'window grew');
  t.equal(rec.requests.length, 1, 'one request in flight (maxInFlight 1), the rest queued');
  ra.onRead(500 * MiB, 4 * KiB, Math.floor(500 * MiB / CHUNK));
  t.equal(ra.window, 0, 'random read resets the window');
  rec.releaseAll();
  await tick();
  t.equal(rec.requests.length, 1, 'queued requests were dropped, not started');
});

t.test('reads slightly out of order (within 1 MiB) stay sequential; random 4 KiB reads never prefetch', async (t) => {
  const rec = recorder(100_000);
  const ra = new Readahead(rec.target, { chunkSize: CHUNK, maxBytes: 8 * MiB });
  const order = [0, 2, 1, 3, 5, 4, 6, 7, 9, 8];
  for (const i of order) ra.onRead(i * MiB, MiB, (i + 1) * 8 - 1);
  t.ok(ra.window >= 16, `window kept growing over reordered 1 MiB reads (${ra.window} chunks)`);

  const rnd = recorder(8192);
  const ra2 = new Readahead(rnd.target, { chunkSize: CHUNK, maxBytes: 8 * MiB });
  let seed = 7;
  for (let i = 0; i < 500; i++) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const off = (seed % (8192 * 32)) * 4 * KiB;
    ra2.onRead(off, 4 * KiB, Math.floor(off / CHUNK));
  }
  t.ok(rnd.requests.length <= 5, `random reads caused ${rnd.requests.length} prefetches (only accidental neighbours)`);
});

t.test('never requests past the last chunk; maxBytes 0 disables readahead', async (t) => {
  const rec = recorder(20);
  const ra = new Readahead(rec.target, { chunkSize: CHUNK, maxBytes: 8 * MiB });
  for (let i = 0; i < 20; i++) ra.onRead(i * CHUNK, CHUNK, i);
  await tick();
  for (const [, b] of rec.requests) t.ok(b <= 19, `request ends at ${b}`);
  const off = recorder(20);
  const none = new Readahead(off.target, { chunkSize: CHUNK, maxBytes: 0 });
  for (let i = 0; i < 20; i++) none.onRead(i * CHUNK, CHUNK, i);
  t.equal(off.requests.length, 0, 'no prefetch');
});

/** Records streams: each one's start, range end, promised limit, cancellation. */
function streamRecorder(chunkTotal: number) {
  const rec = recorder(chunkTotal);
  const streams: { first: number; last: number; until: number; cancelled: boolean }[] = [];
  const target = {
    ...rec.target,
    openStream(first: number, last: number, until: number) {
      const s = {
        first, last: Math.min(last, chunkTotal - 1), until: first, cancelled: false,
        get open() { return !s.cancelled && s.until <= s.last; },
        extend(to: number) { if (!s.cancelled) s.until = Math.max(s.until, Math.min(to, s.last + 1)); return s.until; },
        cancel() { s.cancelled = true; },
      };
      s.extend(until);
      streams.push(s);
      return s;
    },
  };
  return { requests: rec.requests, streams, target };
}

t.test('from a window of 8 chunks on, one stream is kept a window ahead; a seek cancels it', async (t) => {
  const rec = streamRecorder(100_000);
  const ra = new Readahead(rec.target as never, { chunkSize: CHUNK, maxBytes: 8 * MiB });
  for (let off = 0; off < 64 * MiB; off += MiB) {
    ra.onRead(off, MiB, (off + MiB) / CHUNK - 1);
    if (rec.streams.length === 1) {
      const s = rec.streams[0];
      const next = (off + MiB) / CHUNK;
      t.ok(s.until <= next + ra.window && s.until >= next, `stream promised up to ${s.until}, reader at ${next}, window ${ra.window}`);
    }
  }
  t.equal(rec.streams.length, 1, 'one stream for 64 MiB of sequential reads');
  t.ok(rec.requests.every(([, b]) => b < rec.streams[0].first), 'ranged prefetches only before the stream starts');
  t.equal(ra.window, 2 * MiB / CHUNK, 'a stream\'s window stops at 2 MiB (streamWindowBytes default)');
  ra.onRead(900 * MiB, 4 * KiB, 900 * MiB / CHUNK);
  t.ok(rec.streams[0].cancelled, 'a seek cancels the stream');
  t.equal(ra.window, 0, 'and resets the window');
  for (let off = 900 * MiB; off < 920 * MiB; off += MiB) ra.onRead(off, MiB, (off + MiB) / CHUNK - 1);
  t.equal(rec.streams.length, 2, 'a new sequential run opens a new stream');
  t.ok(rec.streams[1].first > 900 * MiB / CHUNK, 'starting after the new position');
  ra.reset();
  t.ok(rec.streams[1].cancelled, 'reset (close) cancels it');
});
