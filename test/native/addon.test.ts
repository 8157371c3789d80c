// The libfuse3 addon without a kernel: a test session (testSession) takes requests from inject()
// exactly as the poll loop would hand them over, and records replies instead of sending them.
// Covers the request-decoding and reply-validation boundaries that are ours: names from the kernel,
// request ids (exactly-once replies), reply arguments, 64-bit values, directory packing, interrupts.
// Runs under AddressSanitizer with `npm run test:native-asan`.
import t from 'tap';

import { A, addonCandidates, loadAddon, type NativeAddon, type NativeSession } from '../../native-bindings/fuse3/native.js';
import { exposeGc } from '../../src/engine/gc-valve.js';

let addon: NativeAddon;
try {
  addon = loadAddon();
} catch (err) {
  t.plan(0, `libfuse3 addon not built: ${(err as Error).message} (looked in ${addonCandidates().join(', ')})`);
  process.exit(0);
}
const OP = addon.ops;
const RK = { ERR: 1, OK: 2, ENTRY: 4, ATTR: 8, READLINK: 16, OPEN: 32, CREATE: 64, BUF: 128, WRITE: 256, DIR: 512, STATFS: 1024 };

interface Req {
  op: number;
  id: number;
  args: unknown[];
}

function harness(): { s: NativeSession; scratch: Float64Array; reqs: Req[]; last(): Req } {
  const reqs: Req[] = [];
  const scratch = new Float64Array(64);
  const s = addon.testSession((op, id, ...args) => reqs.push({ op, id, args }), scratch);
  return { s, scratch, reqs, last: () => reqs[reqs.length - 1] };
}

function fillAttr(a: Float64Array, o: number, ino: number, mode = 0o100644): void {
  a.fill(0, o, o + A.STRIDE);
  a[o + A.INO] = ino;
  a[o + A.MODE] = mode;
  a[o + A.NLINK] = 1;
  a[o + A.SIZE] = 10;
  a[o + A.BLKSIZE] = 4096;
  a[o + A.MTIME_S] = 981173106;
  a[o + A.MTIME_NS] = 123456789;
  a[o + A.ENTRY] = 1;
}

t.test('a request is answered exactly once; later replies return false', async (t) => {
  const { s, scratch, last } = harness();
  t.equal(s.inject(OP.getattr, 5), 1, 'one pending');
  const r = last();
  t.equal(r.op, OP.getattr);
  t.same(r.args, [5, -1], 'ino, no file handle');
  fillAttr(scratch, 0, 5);
  t.equal(s.replyAttr(r.id, 1), true);
  t.same(s.lastReply(), { kind: RK.ATTR, err: 0, len: 10 });
  t.equal(s.replyAttr(r.id, 1), false, 'second reply refused');
  t.equal(s.replyErr(r.id, 2), false, 'an error after the reply is refused too');
  t.equal(s.lastReply().kind, 0, 'nothing was sent');
  const st = s.stats();
  t.equal(st.pending, 0);
  t.equal(st.repliesDropped, 2);
  t.equal(s.replyErr(123456789, 5), false, 'an id never issued');
  t.equal(s.replyErr(2 ** 53 - 1, 5), false, 'a huge id');
  t.equal(s.isPending(r.id), false);
  s.close();
});

t.test('a recycled slot does not accept replies meant for its previous request', async (t) => {
  const { s, last } = harness();
  s.inject(OP.flush, 2, 7);
  const first = last().id;
  t.equal(s.replyErr(first, 0), true);
  s.inject(OP.flush, 2, 7);
  const second = last().id;
  t.not(second, first, 'new id for the same slot');
  t.equal(s.replyErr(first, 0), false, 'the stale id does not answer the new request');
  t.equal(s.isPending(second), true);
  t.equal(s.replyErr(second, 0), true);
  s.close();
});

t.test('a reply that does not fit the op, or has invalid arguments, answers EIO and throws', async (t) => {
  const { s, scratch, last } = harness();
  s.inject(OP.getattr, 5);
  let id = last().id;
  t.throws(() => s.replyBuf(id, Buffer.alloc(3)), /does not fit/);
  t.same(s.lastReply(), { kind: RK.ERR, err: 5, len: 0 }, 'EIO sent');
  t.equal(s.stats().pending, 0);

  s.inject(OP.getattr, 5);
  id = last().id;
  fillAttr(scratch, 0, 5);
  scratch[A.MTIME_NS] = 1e9;
  t.throws(() => s.replyAttr(id, 1), /invalid attributes/);
  t.equal(s.lastReply().err, 5);

  for (const bad of [NaN, -1, 1.5, Infinity, 2 ** 53]) {
    s.inject(OP.getattr, 5);
    id = last().id;
    fillAttr(scratch, 0, 5);
    scratch[A.SIZE] = bad;
    t.throws(() => s.replyAttr(id, 1), /invalid attributes/, `size ${bad}`);
    t.equal(s.stats().pending, 0);
  }

  s.inject(OP.flush, 2, 7);
  id = last().id;
  t.throws(() => s.replyErr(id, -3), /errno/);
  t.equal(s.lastReply().err, 5, 'answered EIO');
  t.throws(() => s.replyErr('x' as unknown as number, 1), /request id/);
  t.throws(() => (s.replyAttr as unknown as (this: unknown, id: number) => boolean).call({}, 1), /not a fuse3 session/);
  t.equal(s.stats().pending, 0);
  s.close();
});

t.test('64-bit values: inode numbers and file handles up to 2^53 - 1 pass through unchanged', async (t) => {
  const { s, last } = harness();
  const big = 2 ** 53 - 1;
  s.inject(OP.getattr, big, 2 ** 40 + 3);
  t.same(last().args, [big, 2 ** 40 + 3], 'ino and fh arrive exactly');
  t.equal(s.replyErr(last().id, 2), true);

  s.inject(OP.open, 9, 0);
  t.equal(s.replyOpen(last().id, big, 0), true);
  t.equal(s.lastReply().len, big, 'fh 2^53 - 1 sent');
  s.inject(OP.open, 9, 0);
  t.equal(s.replyOpen(last().id, BigInt(big) as unknown as number, 0), true, 'BigInt accepted');
  t.equal(s.lastReply().len, big);
  s.inject(OP.open, 9, 0);
  t.throws(() => s.replyOpen(last().id, 2 ** 64 as number, 0), /file handle/, 'beyond 2^53 refused (EIO)');
  s.inject(OP.open, 9, 0);
  t.throws(() => s.replyOpen(last().id, (2n ** 64n - 1n) as unknown as number, 0), /file handle/);
  t.equal(s.stats().pending, 0);
  s.close();
});

t.test('read replies are cut to the size the kernel asked for', async (t) => {
  const { s, last } = harness();
  s.inject(OP.read, 3, 100, 0);
  t.same(last().args.slice(2), [100, 0], 'size, offset');
  t.equal(s.replyBuf(last().id, Buffer.alloc(4096)), true);
  t.equal(s.lastReply().len, 100);
  s.inject(OP.read, 3, 1 << 20, 2 ** 40);
  t.equal(s.replyBuf(last().id, new Uint8Array(10), 7), true);
  t.equal(s.lastReply().len, 7, 'explicit length');
  s.inject(OP.read, 3, 10, 0);
  t.throws(() => s.replyBuf(last().id, Buffer.alloc(3), 4), /invalid length/);
  s.inject(OP.read, 3, 100, 0);
  t.equal(s.replyBuf(last().id, [Buffer.alloc(60), new Uint8Array(0), Buffer.alloc(60)]), true);
  t.equal(s.lastReply().len, 100, 'parts: cut to the size asked for');
  s.inject(OP.read, 3, 100, 0);
  t.equal(s.replyBuf(last().id, [Buffer.alloc(30), Buffer.alloc(30)], 50), true);
  t.equal(s.lastReply().len, 50, 'parts: explicit length');
  s.inject(OP.read, 3, 100, 0);
  t.throws(() => s.replyBuf(last().id, Array.from({ length: 65 }, () => Buffer.alloc(1))), /too many parts/);
  s.inject(OP.read, 3, 100, 0);
  t.throws(() => s.replyBuf(last().id, [Buffer.alloc(1), 'x' as unknown as Buffer]), /must be a Buffer/);
  s.inject(OP.read, 3, 10, 2 ** 53 - 5);
  t.same(s.lastReply(), { kind: RK.ERR, err: 27, len: 0 }, 'offset past 2^53: EFBIG without reaching JS');
  t.equal(s.stats().pending, 0);
  s.close();
});

t.test('write data is a copy owned by JavaScript', async (t) => {
  const { s, last } = harness();
  s.inject(OP.write, 3, 0);
  const data = last().args[2] as Buffer;
  t.ok(Buffer.isBuffer(data));
  t.equal(data.toString(), 'abcd');
  t.equal(s.replyWrite(last().id, 4), true);
  t.equal(data.toString(), 'abcd', 'still valid after the reply');
  s.close();
});

t.test('large write data is a view of the receive block, which then belongs to JavaScript', async (t) => {
  const reqs: Req[] = [];
  const handed: Buffer[] = [];
  const sizes: number[] = [];
  const s = addon.testSession((op, id, ...args) => reqs.push({ op, id, args }), new Float64Array(64), (size) => {
    sizes.push(size);
    const b = Buffer.alloc(size);
    handed.push(b);
    return b;
  });
  const H = addon.constants.RECEIVE_HEADROOM;
  const big = Buffer.alloc(addon.constants.WRITE_VIEW_MIN, 7);
  big.write('first', 0);
  s.inject(OP.write, 3, 1, big);
  t.equal(handed.length, 1, 'one block taken for the request');
  t.ok(sizes[0] > H, `blocks have room for the largest write and its headers (${sizes[0]} bytes)`);
  const d1 = reqs[reqs.length - 1].args[2] as Uint8Array;
  t.equal(d1.buffer, handed[0].buffer, 'the data is a view of the receive block, not a copy');
  t.equal(d1.byteLength, big.length);
  t.ok(d1.byteOffset > 0, 'after the request headers');
  t.equal(Buffer.from(d1.buffer, d1.byteOffset, 5).toString(), 'first');
  const big2 = Buffer.alloc(sizes[0] - H, 9);
  big2.write('second', 0);
  s.inject(OP.write, 3, 1, big2);
  t.equal(handed.length, 2, 'the next request went into a fresh block');
  const d2 = reqs[reqs.length - 1].args[2] as Uint8Array;
  t.equal(d2.buffer, handed[1].buffer);
  t.equal(d2.byteLength, sizes[0] - H, 'the largest write fits');
  t.equal(Buffer.from(d1.buffer, d1.byteOffset, 5).toString(), 'first', 'the first write data is untouched');
  t.equal(Buffer.from(d2.buffer, d2.byteOffset, 6).toString(), 'second');
  const small = Buffer.from('tiny write');
  s.inject(OP.write, 3, 1, small);
  const d3 = reqs[reqs.length - 1].args[2] as Buffer;
  t.equal(handed.length, 3, 'a fresh block for the small write');
  t.ok(Buffer.isBuffer(d3) && d3.buffer !== handed[2].buffer, 'small write data is a copy');
  t.equal(d3.toString(), 'tiny write');
  s.inject(OP.write, 3, 1, big);
  t.equal(handed.length, 3, 'after a small write the same block takes the next request');
  t.equal((reqs[reqs.length - 1].args[2] as Uint8Array).buffer, handed[2].buffer);
  t.throws(() => s.inject(OP.write, 3, 1, Buffer.alloc(sizes[0])), /does not fit/);
  for (const r of reqs) t.equal(s.replyWrite(r.id, 1), true);
  t.equal(s.stats().pending, 0);
  s.close();
});

t.test('a writeBuffer provider that returns another size: write data is copied', async (t) => {
  const reqs: Req[] = [];
  const s = addon.testSession((op, id, ...args) => reqs.push({ op, id, args }), new Float64Array(64), () => Buffer.alloc(100));
  const big = Buffer.alloc(addon.constants.WRITE_VIEW_MIN, 5);
  s.inject(OP.write, 3, 1, big);
  const d = reqs[reqs.length - 1].args[2] as Buffer;
  t.ok(Buffer.isBuffer(d) && d.byteLength === big.length && d.equals(big), 'a copy with the same bytes');
  t.equal(s.replyWrite(reqs[reqs.length - 1].id, big.length), true);
  s.close();
});

t.test('names from the kernel: strict UTF-8, no "/", 1..1024 bytes', async (t) => {
  const { s, reqs, last } = harness();
  s.inject(OP.lookup, 1, Buffer.from('héllo wörld ✓ 😀'));
  t.equal(last().args[1], 'héllo wörld ✓ 😀');
  t.equal(s.replyErr(last().id, 2), true);
  const n = reqs.length;
  for (const bad of [Buffer.from([0xff]), Buffer.from([0xc0, 0x80]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xe2, 0x82]), Buffer.from('a/b')]) {
    s.inject(OP.lookup, 1, bad);
    t.same(s.lastReply(), { kind: RK.ERR, err: 2, len: 0 }, `lookup ${bad.toString('hex')}: ENOENT`);
    s.inject(OP.mkdir, 1, bad);
    t.same(s.lastReply(), { kind: RK.ERR, err: 22, len: 0 }, `mkdir ${bad.toString('hex')}: EINVAL`);
  }
  t.equal(reqs.length, n, 'none of them reached JavaScript');
  t.equal(s.stats().pending, 0);
  s.close();
});

t.test('fuzz: decodeName agrees with a strict reference decoder', async (t) => {
  const ref = new TextDecoder('utf-8', { fatal: true });
  const reference = (b: Buffer, isName: boolean): string | null => {
    if (b.length === 0 || b.length > 1024 || b.includes(0) || (isName && b.includes(0x2f))) return null;
    try {
      return ref.decode(b);
    } catch {
      return null;
    }
  };
  // Bytes that matter to UTF-8 decoding, plus anything.
  const interesting = [0x00, 0x2f, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff];
  let seed = 0x12345678;
  const rnd = (n: number) => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  let mismatches = 0;
  let accepted = 0;
  const N = 20_000;
  for (let i = 0; i < N; i++) {
    const len = rnd(10) === 0 ? 1000 + rnd(40) : rnd(12);
    const b = Buffer.alloc(len);
    for (let k = 0; k < len; k++) b[k] = rnd(3) === 0 ? rnd(256) : interesting[rnd(interesting.length)];
    // Sometimes splice in a valid multi-byte character.
    if (len > 4 && rnd(2) === 0) Buffer.from(String.fromCodePoint(0x80 + rnd(0x10ff80 - 0x800)), 'utf8').copy(b, rnd(len - 4));
    const isName = rnd(2) === 0;
    const got = addon.decodeName(b, isName);
    const want = reference(b, isName);
    if (got !== want) {
      mismatches++;
      if (mismatches < 5) t.fail(`${b.toString('hex')}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
    }
    if (got !== null) accepted++;
  }
  t.equal(mismatches, 0, `${N} random names, ${accepted} accepted`);
  t.ok(accepted > 100 && accepted < N - 100, 'both outcomes exercised');
  for (const cp of [0x7f, 0x80, 0x7ff, 0x800, 0xd7ff, 0xe000, 0xfffd, 0xffff, 0x10000, 0x10ffff]) {
    const s = String.fromCodePoint(cp);
    t.equal(addon.decodeName(Buffer.from(s, 'utf8')), s, `U+${cp.toString(16)}`);
  }
  t.equal(addon.decodeName(Buffer.from([0xf4, 0x90, 0x80, 0x80])), null, 'above U+10FFFF');
  t.equal(addon.decodeName(Buffer.alloc(1024, 0x61))?.length, 1024);
  t.equal(addon.decodeName(Buffer.alloc(1025, 0x61)), null);
});

t.test('readdir packing: entries fill the kernel buffer, offsets continue where it stopped', async (t) => {
  const { s, last } = harness();
  const names = Array.from({ length: 500 }, (_, i) => `entry-${i}-${'x'.repeat(i % 40)}`);
  const attrs = new Float64Array(names.length * A.STRIDE);
  names.forEach((_, i) => fillAttr(attrs, i * A.STRIDE, i + 2));
  const rec = (name: string) => (24 + Buffer.byteLength(name) + 7) & ~7;
  let start = 0;
  let calls = 0;
  while (start < names.length) {
    s.inject(OP.readdir, 1, 4096, start);
    const sent = s.replyDir(last().id, names, attrs, start, 1, 1) as number;
    let want = 0;
    let bytes = 0;
    while (start + want < names.length && bytes + rec(names[start + want]) <= 4096) bytes += rec(names[start + want++]);
    t.equal(sent, want, `call ${calls}: ${want} entries`);
    t.equal(s.lastReply().len, bytes);
    start += sent;
    calls++;
  }
  t.ok(calls > 5, `${calls} calls`);
  s.inject(OP.readdir, 1, 4096, 0);
  t.throws(() => s.replyDir(last().id, ['ok', 'a/b'], new Float64Array(2 * A.STRIDE).fill(0), 0), /names/);
  s.inject(OP.readdir, 1, 4096, 0);
  t.throws(() => s.replyDir(last().id, ['a', 'b'], new Float64Array(A.STRIDE), 0), /Float64Array/);
  t.equal(s.stats().pending, 0);
  s.close();
});

t.test('interrupts reach JavaScript only for requests still waiting', async (t) => {
  const { s, reqs, last } = harness();
  s.inject(OP.read, 3, 10, 0);
  const id = last().id;
  s.inject(OP.interrupt, 0, id);
  t.same({ op: last().op, id: last().id }, { op: OP.interrupt, id }, 'delivered');
  t.equal(s.replyErr(id, 4), true, 'EINTR');
  const n = reqs.length;
  s.inject(OP.interrupt, 0, id);
  t.equal(reqs.length, n, 'an interrupt for an answered request is dropped');
  t.equal(s.stats().requests.interrupt, 1);
  s.close();
});

t.test('property: random requests and replies never leave a request unanswered or answered twice', async (t) => {
  const { s, scratch, reqs } = harness();
  let seed = 99;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const ops = [OP.getattr, OP.read, OP.readdir, OP.open, OP.write, OP.flush, OP.statfs, OP.lookup, OP.create, OP.setattr];
  const open = new Set<number>();
  const answered = new Set<number>();
  let sent = 0;
  let issued = 0;
  for (let step = 0; step < 5000; step++) {
    if (open.size === 0 || rnd(3) === 0) {
      const op = ops[rnd(ops.length)];
      const before = reqs.length;
      if (op === OP.lookup) s.inject(op, 1 + rnd(100), Buffer.from(`n${rnd(1000)}`));
      else if (op === OP.read || op === OP.readdir) s.inject(op, 1 + rnd(100), 1 + rnd(65536), rnd(1000));
      else s.inject(op, 1 + rnd(100), rnd(5));
      if (reqs.length > before) {
        open.add(reqs[reqs.length - 1].id);
        issued++;
      }
      continue;
    }
    const ids = [...open, ...answered];
    const id = rnd(4) === 0 ? ids[rnd(ids.length)] : [...open][rnd(open.size)];
    fillAttr(scratch, 0, 1 + rnd(100));
    if (rnd(10) === 0) scratch[rnd(14)] = [NaN, -1, 2 ** 60][rnd(3)];
    scratch.fill(1, 0, 11);
    if (rnd(2) === 0) fillAttr(scratch, 0, 1 + rnd(100));
    const kind = rnd(11);
    let ok: boolean | number = false;
    try {
      switch (kind) {
        case 0: ok = s.replyErr(id, rnd(50)); break;
        case 1: ok = s.replyAttr(id, rnd(3)); break;
        case 2: ok = s.replyEntry(id, 1, 1); break;
        case 3: ok = s.replyBuf(id, Buffer.alloc(rnd(200))); break;
        case 4: ok = s.replyOpen(id, rnd(2) ? 2 ** 33 + rnd(100) : -1, rnd(40)); break;
        case 5: ok = s.replyWrite(id, rnd(2) ? 4 : -4); break;
        case 6: ok = s.replyStatfs(id); break;
        case 7: ok = s.replyDir(id, ['a', 'b', 'c'], new Float64Array(3 * A.STRIDE).map((_, i) => (i % A.STRIDE === A.INO ? 5 : i % A.STRIDE === A.MODE ? 0o100644 : 0)), rnd(4)); break;
        case 8: ok = s.replyCreate(id, 2 ** 40, 0, 1, 1); break;
        case 9: ok = s.replyReadlink(id, rnd(2) ? 'target' : ''); break;
        default: ok = s.replyErr(id, 0); break;
      }
    } catch {
      ok = true; // an invalid reply answers the request with EIO
    }
    const reply = s.lastReply();
    const wasOpen = open.has(id);
    if (wasOpen) {
      t.ok(reply.kind !== 0 || ok === false, 'something was sent');
      if (reply.kind !== 0) {
        open.delete(id);
        answered.add(id);
        sent++;
      }
    } else if (reply.kind !== 0) {
      t.fail(`request ${id} answered twice`);
    }
  }
  for (const id of open) {
    s.replyErr(id, 5);
    if (s.lastReply().kind) sent++;
  }
  t.equal(sent, issued, `${issued} requests, each answered once`);
  t.equal(s.stats().pending, 0);
  s.close();
});

t.test('close() answers what is pending and later replies return false', async (t) => {
  const { s, last } = harness();
  s.inject(OP.read, 3, 10, 0);
  const id = last().id;
  s.inject(OP.read, 3, 10, 0);
  s.close();
  t.equal(s.stats().pending, 0);
  t.equal(s.replyBuf(id, Buffer.alloc(1)), false);
  s.close();
});

t.test('trimMalloc returns the C heap\'s free pages to the OS', async (t) => {
  const gc = exposeGc()!;
  // 64 KiB Buffers come from malloc's main heap; the last one pins its top, so glibc's automatic
  // trimming at free() cannot release the others: only malloc_trim can.
  let held: Buffer[] | null = Array.from({ length: 1024 }, () => Buffer.allocUnsafeSlow(64 * 1024).fill(1));
  const pin = Buffer.allocUnsafeSlow(64 * 1024).fill(2);
  held = null;
  gc();
  await new Promise((r) => setTimeout(r, 200)); // V8 may free backing stores on a background thread
  const before = process.memoryUsage.rss();
  const released = addon.trimMalloc();
  const after = process.memoryUsage.rss();
  if (process.env.S3CRYPTFS_MALLOC_REPLACED === '1') {
    // Under AddressSanitizer or valgrind (test-asan.sh) their allocator owns the heap: glibc's has nothing to trim.
    t.type(released, 'boolean');
  } else {
    t.equal(released, true, 'malloc_trim released memory');
    t.ok(before - after >= 32 * 1024 * 1024, `RSS fell by ${((before - after) / 2 ** 20).toFixed(1)} MiB (64 MiB freed)`);
  }
  t.equal(pin[0], 2);
  t.equal(held, null);
});
