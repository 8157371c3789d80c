/**
 * Crypto throughput on one core: the chunked object format (ObjectSealer / ObjectCipher / ObjectOpener)
 * for each cipher x chunk size, against raw OpenSSL AEAD (one createCipheriv call over 1 MiB) and
 * @noble/ciphers' pure-JS AEADs. Prints a table and which chunk sizes meet the chunk-size rule:
 *
 *   a random 4 KiB (page-aligned) read fetches at most one chunk, AND
 *   bulk seal and open are each >= 80% of raw OpenSSL on 1 MiB.
 *
 *   npm run bench:crypto                 (tsx bench/crypto.ts)
 *   npm run bench:crypto -- --quick      smaller buffers, fewer runs
 *
 * MB/s here is 10^6 bytes per second of plaintext, best of several runs.
 */
import { createCipheriv, createDecipheriv, randomBytes, randomInt } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { gcm } from '@noble/ciphers/aes.js';
import {
  chunkCiphertextOffset, chunkCount, chunksForRange, ciphertextRangeOfChunks, DEFAULT_CHUNK_SIZE, deriveKeys, HEADER_SIZE,
  chunkAad, chunkNonce, newObjectCipher, ObjectOpener, ObjectSealer, openObjectHeader, TAG_SIZE, type CipherName,
} from '../src/format/index.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const quick = process.argv.includes('--quick');
const BULK = (quick ? 16 : 64) * MiB;
const RAW = 1 * MiB;
const RUNS = quick ? 3 : 7;
const CIPHERS: CipherName[] = ['chacha20-poly1305', 'aes-256-gcm'];
const CHUNK_SIZES = [4 * KiB, 16 * KiB, 64 * KiB, 128 * KiB, 256 * KiB, 1 * MiB];
const PAGE = 4 * KiB;
const BULK_RULE = 0.8;
/** Same AAD length as the format's chunks (immutable header fields, commitment, final flag). */
const CHUNK_AAD_BYTES = chunkAad(Buffer.alloc(HEADER_SIZE), 0).length;

/*
 * Every figure is the best of RUNS runs after a warm-up, and the runs are interleaved: each round times
 * raw OpenSSL and every chunk size of a cipher once, in turn. The machine may be shared; interleaving
 * puts all figures under the same conditions, and the best run is the least disturbed one.
 */

/** One timed unit of work: `run` processes `bytes` plaintext bytes. */
interface Op { bytes: number; run: () => void }

function rate(op: Op): number {
  const t0 = process.hrtime.bigint();
  op.run();
  const ns = Number(process.hrtime.bigint() - t0);
  return op.bytes / 1e6 / (ns / 1e9);
}

/** Best MB/s of each op over RUNS interleaved rounds. */
function bestOf(ops: Op[], runs = RUNS): number[] {
  for (const op of ops) op.run();
  const best = ops.map(() => 0);
  for (let r = 0; r < runs; r++) ops.forEach((op, i) => { best[i] = Math.max(best[i], rate(op)); });
  return best;
}

/** `reps` repetitions of `fn`, which processes `bytes` bytes. */
const repeat = (bytes: number, reps: number, fn: () => void): Op => ({ bytes: bytes * reps, run: () => { for (let i = 0; i < reps; i++) fn(); } });

interface Rates { seal: number; open: number }

/** Raw OpenSSL AEAD: one createCipheriv / createDecipheriv call over a 1 MiB buffer; a run is as many bytes as the format's. */
function rawOpenSsl(cipher: CipherName): { seal: Op; open: Op } {
  const key = randomBytes(32);
  const nonce = randomBytes(12);
  const aad = randomBytes(CHUNK_AAD_BYTES);
  const plain = randomBytes(RAW);
  const opts = { authTagLength: TAG_SIZE } as never;
  const seal = (): { body: Buffer; tag: Buffer } => {
    const c = createCipheriv(cipher, key, nonce, opts) as unknown as {
      setAAD(b: Uint8Array): void; update(b: Uint8Array): Buffer; final(): Buffer; getAuthTag(): Buffer;
    };
    c.setAAD(aad);
    const body = c.update(plain);
    c.final();
    return { body, tag: c.getAuthTag() };
  };
  const { body, tag } = seal();
  const open = () => {
    const d = createDecipheriv(cipher, key, nonce, opts) as unknown as {
      setAAD(b: Uint8Array): void; setAuthTag(t: Uint8Array): void; update(b: Uint8Array): Buffer; final(): Buffer;
    };
    d.setAuthTag(tag);
    d.setAAD(aad);
    d.update(body);
    d.final();
  };
  return { seal: repeat(RAW, BULK / RAW, seal), open: repeat(RAW, BULK / RAW, open) };
}

/** @noble/ciphers pure-JS AEAD over the same 1 MiB buffer. */
function nobleJs(cipher: CipherName): Rates {
  const key = randomBytes(32);
  const nonce = randomBytes(12);
  const aad = randomBytes(CHUNK_AAD_BYTES);
  const plain = randomBytes(RAW);
  const make = () => (cipher === 'chacha20-poly1305' ? chacha20poly1305(key, nonce, aad) : gcm(key, nonce, aad));
  const sealed = make().encrypt(plain);
  const reps = quick ? 2 : 8;
  const [seal, open] = bestOf([repeat(RAW, reps, () => make().encrypt(plain)), repeat(RAW, reps, () => make().decrypt(sealed))], 3);
  return { seal, open };
}

/**
 * The object format on the same terms as the raw baseline: 1 MiB input buffers, BULK bytes in all.
 * Seal pushes the 1 MiB buffer BULK/1MiB times into one object; open authenticates every chunk of a
 * sealed 1 MiB object, BULK/1MiB times (random-access path) or as a stream (whole-object GET path).
 */
function formatOps(cipher: CipherName, chunkSize: number, plain: Buffer): { seal: Op; open: Op; stream: Op; oslChunked: Op } {
  const keys = deriveKeys(randomBytes(32));
  const reps = BULK / plain.length;
  // Sealed chunks are dropped as they come, as an upload hands them to the network and lets them go.
  const seal = () => {
    const sealer = new ObjectSealer(newObjectCipher(keys, { cipher, chunkSize }));
    for (let i = 0; i < reps; i++) sealer.push(plain);
    sealer.finish();
  };
  const sealer = new ObjectSealer(newObjectCipher(keys, { cipher, chunkSize }));
  const ct = Buffer.concat([...sealer.push(plain), ...sealer.finish()]);
  const total = chunkCount(plain.length, chunkSize);

  // Random access path: authenticate the header, then open every chunk at its offset.
  const openChunks = () => {
    const oc = openObjectHeader(keys, ct.subarray(0, HEADER_SIZE));
    for (let i = 0; i < total; i++) {
      const off = chunkCiphertextOffset(i, chunkSize);
      oc.openChunk(i, total, ct.subarray(off, Math.min(off + chunkSize + TAG_SIZE, ct.length)));
    }
  };
  // Streaming path: what a whole-object GET goes through, fed in 256 KiB network-sized pieces.
  const openStream = () => {
    const opener = new ObjectOpener(keys);
    for (let at = 0; at < ct.length; at += 256 * KiB) opener.push(ct.subarray(at, at + 256 * KiB));
    opener.finish();
  };
  // Diagnostic: OpenSSL alone, one call per chunk over the same buffer, none of the format's bookkeeping.
  const key = randomBytes(32);
  const aad = randomBytes(CHUNK_AAD_BYTES);
  const oslChunked = () => {
    for (let at = 0, i = 0; at < plain.length; at += chunkSize, i++) {
      const c = createCipheriv(cipher, key, chunkNonce(i), { authTagLength: TAG_SIZE } as never) as unknown as {
        setAAD(b: Uint8Array): void; update(b: Uint8Array): Buffer; final(): Buffer; getAuthTag(): Buffer;
      };
      c.setAAD(aad);
      c.update(plain.subarray(at, at + chunkSize));
      c.final();
      c.getAuthTag();
    }
  };
  return { seal: { bytes: BULK, run: seal }, open: repeat(plain.length, reps, openChunks), stream: repeat(plain.length, reps, openStream), oslChunked: repeat(plain.length, reps, oslChunked) };
}

/** Most chunks any of `trials` random page-aligned 4 KiB reads touches, and the bytes it fetches. */
function randomPageRead(chunkSize: number, objectSize: number, trials = 10_000): { chunks: number; fetched: number } {
  let chunks = 0;
  let fetched = 0;
  for (let i = 0; i < trials; i++) {
    const off = randomInt(0, objectSize / PAGE) * PAGE;
    const span = chunksForRange(off, off + PAGE, objectSize, chunkSize)!;
    const r = ciphertextRangeOfChunks(span, objectSize, chunkSize);
    chunks = Math.max(chunks, span.last - span.first + 1);
    fetched = Math.max(fetched, r.endExclusive - r.start);
  }
  return { chunks, fetched };
}

const fmt = (n: number, w: number, digits = 0) => n.toFixed(digits).padStart(w);
const size = (n: number) => (n >= MiB ? `${n / MiB}M` : `${n / KiB}K`);

function main(): void {
  console.log(`s3cryptfs crypto bench: node ${process.version}, OpenSSL ${process.versions.openssl}, ${cpus()[0]?.model ?? 'unknown cpu'}`);
  console.log(`one core (synchronous calls on the main thread); load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} on ${cpus().length} cpus`);
  console.log(`every path: ${BULK / MiB} MiB in all, in 1 MiB buffers (raw OpenSSL and noble: one AEAD call per 1 MiB); best of ${RUNS} interleaved runs\n`);
  const plain = randomBytes(RAW);

  interface Row { cipher: CipherName; chunkSize: number; seal: number; open: number; stream: number; osl: number }
  const raw = new Map<CipherName, Rates>();
  const noble = new Map<CipherName, Rates>();
  const rows: Row[] = [];
  for (const cipher of CIPHERS) {
    const r = rawOpenSsl(cipher);
    const f = CHUNK_SIZES.map((cs) => formatOps(cipher, cs, plain));
    const best = bestOf([r.seal, r.open, ...f.flatMap((o) => [o.seal, o.open, o.stream, o.oslChunked])]);
    raw.set(cipher, { seal: best[0], open: best[1] });
    CHUNK_SIZES.forEach((chunkSize, i) => rows.push({
      cipher, chunkSize, seal: best[2 + 4 * i], open: best[3 + 4 * i], stream: best[4 + 4 * i], osl: best[5 + 4 * i],
    }));
    noble.set(cipher, nobleJs(cipher));
  }

  console.log('baselines (MB/s)                 seal     open');
  for (const c of CIPHERS) {
    console.log(`  raw OpenSSL ${c.padEnd(18)}${fmt(raw.get(c)!.seal, 9)}${fmt(raw.get(c)!.open, 9)}`);
    console.log(`  @noble JS   ${c.padEnd(18)}${fmt(noble.get(c)!.seal, 9)}${fmt(noble.get(c)!.open, 9)}`);
  }
  console.log();

  const header = 'cipher             chunk   seal   open stream | seal/raw open/raw strm/raw | seal/noble open/noble | 4K read: chunks fetched | rule | osl/chunk';
  console.log(header);
  console.log('-'.repeat(header.length));
  const meets = new Map<number, boolean>(CHUNK_SIZES.map((s) => [s, true]));
  for (const row of rows) {
    const r = raw.get(row.cipher)!;
    const n = noble.get(row.cipher)!;
    const read = randomPageRead(row.chunkSize, BULK);
    const ok = read.chunks <= 1 && row.seal >= BULK_RULE * r.seal && row.open >= BULK_RULE * r.open;
    if (!ok) meets.set(row.chunkSize, false);
    console.log(
      `${row.cipher.padEnd(18)} ${size(row.chunkSize).padStart(5)} ${fmt(row.seal, 6)} ${fmt(row.open, 6)} ${fmt(row.stream, 6)} | ` +
      `${fmt(row.seal / r.seal, 8, 2)} ${fmt(row.open / r.open, 8, 2)} ${fmt(row.stream / r.open, 8, 2)} | ` +
      `${fmt(row.seal / n.seal, 10, 1)} ${fmt(row.open / n.open, 10, 1)} | ${fmt(read.chunks, 14)} ${size(read.fetched - TAG_SIZE).padStart(6)}+16 | ${(ok ? 'yes' : 'no').padEnd(4)} | ${fmt(row.osl, 9)}`,
    );
  }

  console.log('osl/chunk: diagnostic, MB/s of OpenSSL sealing the same buffer one chunk per call, without the format code');
  // Time per chunk is about fixed + size / speed; two chunk sizes give both terms.
  console.log('\nper-chunk fixed cost (from the 4K and 1M rows):');
  for (const cipher of CIPHERS) {
    const [small, big] = [CHUNK_SIZES[0], CHUNK_SIZES[CHUNK_SIZES.length - 1]].map((cs) => rows.find((r) => r.cipher === cipher && r.chunkSize === cs)!);
    const cost = (op: 'seal' | 'open') => {
      const us = (row: Row) => (row.chunkSize / (row[op] * 1e6)) * 1e6;
      const perByte = (us(big) - us(small)) / (big.chunkSize - small.chunkSize);
      return us(small) - perByte * small.chunkSize;
    };
    console.log(`  ${cipher.padEnd(18)} seal ${cost('seal').toFixed(1)} us, open ${cost('open').toFixed(1)} us`);
  }

  console.log(`\nrule: a random 4 KiB read fetches <= 1 chunk AND seal and open (chunk path) >= ${BULK_RULE * 100}% of raw OpenSSL on 1 MiB, both ciphers`);
  for (const s of CHUNK_SIZES) console.log(`  ${size(s).padStart(5)}: ${meets.get(s) ? 'meets the rule' : 'does not meet the rule'}`);
  const smallest = CHUNK_SIZES.find((s) => meets.get(s));
  console.log(
    smallest === undefined
      ? `\nno chunk size meets the rule; current DEFAULT_CHUNK_SIZE: ${size(DEFAULT_CHUNK_SIZE)}`
      : `\nsmallest chunk size meeting the rule (least read amplification): ${size(smallest)}; current DEFAULT_CHUNK_SIZE: ${size(DEFAULT_CHUNK_SIZE)}`,
  );
}

main();
