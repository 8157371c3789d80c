/**
 * Request bodies as the handlers see them: the decoded payload, streamed, with every integrity
 * claim the client made checked against the bytes actually received:
 *   - x-amz-content-sha256 (a hex digest: the whole body must hash to it),
 *   - aws-chunked framing (STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER], STREAMING-UNSIGNED-PAYLOAD-TRAILER):
 *     each chunk's signature, chained from the request signature, before the chunk is passed on,
 *     then the trailer's checksum and signature,
 *   - Content-MD5 and x-amz-checksum-* (header or trailer), over the decoded payload,
 *   - the declared length (Content-Length or x-amz-decoded-content-length) and the size limit.
 * Iteration throws S3Error on the first failed check; the final checks run before the iteration
 * ends, so a consumer that only commits after the loop never commits an unverified body.
 */
import { createHash, type Hash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { checksumHeaderAlgorithm, isChecksumAlgorithm, newChecksummer, type ChecksumAlgorithm, type Checksummer } from './checksums.js';
import { Errors, S3Error } from './errors.js';
import { chunkSignature, safeEqualHex, trailerSignature, type AuthContext } from './sigv4.js';

/** Largest aws-chunked chunk accepted (a signed chunk is held in memory until verified). */
const MAX_CHUNK_BYTES = 16 * 1024 * 1024;
const MAX_LINE_BYTES = 4096;

export interface PayloadResult {
  /** Decoded bytes received. */
  size: number;
  /** MD5 of the decoded payload: computed only when asked for (wantMd5) or when Content-MD5 was sent. */
  md5: Buffer | undefined;
}

export class Payload implements AsyncIterable<Buffer> {
  /** Declared decoded length, when the client declared one. */
  readonly length: number | undefined;
  /** The Content-MD5 the client declared (checked at the end of the body). */
  readonly expectedMd5: Buffer | undefined;
  /**
   * Compute the MD5 even without Content-MD5 (an ETag, a part name); set before reading. MD5 is the
   * costliest hash here (about 3x SHA-256 per byte), so it is skipped when nothing needs it.
   */
  wantMd5 = false;
  private result: PayloadResult | undefined;
  private consumed = false;

  constructor(
    private readonly source: AsyncIterable<Buffer>,
    private readonly headers: IncomingHttpHeaders,
    private readonly auth: AuthContext | undefined,
    private readonly maxBytes: number,
  ) {
    this.length = declaredLength(headers, auth);
    this.expectedMd5 = expectedMd5(headers);
    if (this.length !== undefined && this.length > maxBytes) throw Errors.entityTooLarge(maxBytes);
  }

  /** Available once iteration has completed. */
  get done(): PayloadResult {
    if (!this.result) throw new Error('payload not fully read');
    return this.result;
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    if (this.consumed) throw new Error('payload already consumed');
    this.consumed = true;
    return this.run()[Symbol.asyncIterator]();
  }

  /** Reads the whole payload into memory (XML bodies); `limit` caps it. */
  async buffer(limit = this.maxBytes): Promise<Buffer> {
    const parts = await this.pieces(limit);
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  /** The whole payload as the pieces it arrived in (no copy). */
  async pieces(limit = this.maxBytes): Promise<Buffer[]> {
    const parts: Buffer[] = [];
    let n = 0;
    for await (const piece of this) {
      n += piece.length;
      if (n > limit) throw Errors.entityTooLarge(limit);
      parts.push(piece);
    }
    return parts;
  }

  /** Drains without keeping anything (still verifies). */
  async drain(): Promise<void> {
    for await (const _ of this) {
      // discard
    }
  }

  private async *run(): AsyncGenerator<Buffer> {
    // Each hash runs once over the pieces as they stream by, and only when something needs it.
    const md5 = this.wantMd5 || this.expectedMd5 !== undefined ? createHash('md5') : undefined;
    const headerChecks = headerChecksums(this.headers);
    const contentMd5 = this.expectedMd5;
    const mode = this.auth?.payload ?? { kind: 'unsigned' as const };
    let size = 0;
    const seen = (piece: Buffer) => {
      size += piece.length;
      if (size > this.maxBytes) throw Errors.entityTooLarge(this.maxBytes);
      md5?.update(piece);
      for (const c of headerChecks) c.sum.update(piece);
    };
    let trailers = new Map<string, string>();
    let trailerSums: { alg: ChecksumAlgorithm; sum: Checksummer }[] = [];
    if (mode.kind === 'streaming') {
      trailerSums = declaredTrailers(this.headers).map((alg) => ({ alg, sum: newChecksummer(alg) }));
      const reader = new ChunkReader(this.source);
      let previous = this.auth!.signature;
      for (;;) {
        const line = await reader.line();
        const [sizeText, ...exts] = line.split(';');
        if (!/^[0-9a-fA-F]+$/.test(sizeText.trim())) throw Errors.invalidRequest('malformed aws-chunked encoding: bad chunk size');
        const chunkLen = parseInt(sizeText.trim(), 16);
        if (chunkLen > MAX_CHUNK_BYTES) throw Errors.invalidRequest(`aws-chunked chunk of ${chunkLen} bytes is larger than ${MAX_CHUNK_BYTES}`);
        const sigExt = exts.map((e) => e.trim()).find((e) => e.startsWith('chunk-signature='));
        if (mode.signed) {
          if (!sigExt) throw Errors.signatureDoesNotMatch({ Reason: 'missing chunk-signature' });
          // The chunk as the pieces it arrived in (no joined copy), hashed piece by piece.
          const data = await reader.takePieces(chunkLen);
          const chunkHash = createHash('sha256');
          for (const piece of data) chunkHash.update(piece);
          const expected = chunkSignature(this.auth!, previous, chunkHash.digest('hex'));
          const given = sigExt.slice('chunk-signature='.length).toLowerCase();
          if (!safeEqualHex(expected, given)) throw Errors.signatureDoesNotMatch({ Reason: 'chunk signature mismatch' });
          previous = given;
          for (const piece of data) {
            seen(piece);
            for (const t of trailerSums) t.sum.update(piece);
            yield piece;
          }
        } else {
          for await (const piece of reader.stream(chunkLen)) {
            seen(piece);
            for (const t of trailerSums) t.sum.update(piece);
            yield piece;
          }
        }
        if (chunkLen === 0) break;
        const crlf = await reader.line();
        if (crlf !== '') throw Errors.invalidRequest('malformed aws-chunked encoding: missing CRLF after chunk data');
      }
      // Trailer section: "name:value" lines up to an empty line (or the end of the body).
      const lines: string[] = [];
      for (;;) {
        const line = await reader.line(true);
        if (line === null || line === '') break;
        lines.push(line);
      }
      trailers = new Map(lines.map((l) => {
        const i = l.indexOf(':');
        return [l.slice(0, i < 0 ? l.length : i).trim().toLowerCase(), i < 0 ? '' : l.slice(i + 1).trim()] as [string, string];
      }));
      if (mode.signed && mode.trailer) {
        const given = trailers.get('x-amz-trailer-signature');
        if (!given) throw Errors.signatureDoesNotMatch({ Reason: 'missing x-amz-trailer-signature' });
        const canonical = [...trailers.entries()].filter(([k]) => k !== 'x-amz-trailer-signature').sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}:${v}\n`).join('');
        if (!safeEqualHex(trailerSignature(this.auth!, previous, canonical), given.toLowerCase())) {
          throw Errors.signatureDoesNotMatch({ Reason: 'trailer signature mismatch' });
        }
      }
      await reader.expectEnd();
    } else {
      const sha = mode.kind === 'sha256' ? createHash('sha256') : undefined;
      for await (const piece of this.source) {
        const b = Buffer.isBuffer(piece) ? piece : Buffer.from(piece);
        seen(b);
        sha?.update(b);
        yield b;
      }
      if (sha && mode.kind === 'sha256' && sha.digest('hex') !== mode.hex) throw Errors.sha256Mismatch();
    }
    if (this.length !== undefined && size !== this.length) throw Errors.incompleteBody();
    const digest = md5?.digest();
    if (contentMd5 && !contentMd5.equals(digest!)) throw Errors.badDigest();
    for (const c of headerChecks) checkSum(c.alg, c.sum, c.expected);
    for (const t of trailerSums) {
      const expected = trailers.get(`x-amz-checksum-${t.alg}`);
      if (expected === undefined) throw Errors.invalidRequest(`the trailer x-amz-checksum-${t.alg} announced in x-amz-trailer is missing`);
      checkSum(t.alg, t.sum, expected);
    }
    this.result = { size, md5: digest };
  }
}

function checkSum(alg: ChecksumAlgorithm, sum: Checksummer, expected: string): void {
  if (sum.digest() !== expected) throw Errors.badDigest(`The ${alg.toUpperCase()} you specified did not match the calculated checksum.`);
}

function declaredLength(headers: IncomingHttpHeaders, auth: AuthContext | undefined): number | undefined {
  const parse = (v: string | string[] | undefined, name: string): number | undefined => {
    if (v === undefined) return undefined;
    const s = Array.isArray(v) ? v[0] : v;
    if (!/^\d+$/.test(s.trim())) throw Errors.invalidArgument(`${name} must be a non-negative integer`);
    return Number(s.trim());
  };
  if (auth?.payload.kind === 'streaming') {
    const decoded = parse(headers['x-amz-decoded-content-length'], 'x-amz-decoded-content-length');
    if (decoded === undefined) throw Errors.missingContentLength();
    return decoded;
  }
  return parse(headers['content-length'], 'Content-Length');
}

function expectedMd5(headers: IncomingHttpHeaders): Buffer | undefined {
  const v = headers['content-md5'];
  if (v === undefined) return undefined;
  const b = Buffer.from(String(v).trim(), 'base64');
  if (b.length !== 16 || !/^[A-Za-z0-9+/]{22}==$/.test(String(v).trim())) throw Errors.invalidDigest();
  return b;
}

function headerChecksums(headers: IncomingHttpHeaders): { alg: ChecksumAlgorithm; sum: Checksummer; expected: string }[] {
  const out: { alg: ChecksumAlgorithm; sum: Checksummer; expected: string }[] = [];
  for (const [name, value] of Object.entries(headers)) {
    const alg = checksumHeaderAlgorithm(name);
    if (alg && value !== undefined) out.push({ alg, sum: newChecksummer(alg), expected: String(value).trim() });
  }
  return out;
}

function declaredTrailers(headers: IncomingHttpHeaders): ChecksumAlgorithm[] {
  const v = headers['x-amz-trailer'];
  if (v === undefined) return [];
  const out: ChecksumAlgorithm[] = [];
  for (const name of String(v).split(',').map((s) => s.trim().toLowerCase()).filter(Boolean)) {
    const alg = checksumHeaderAlgorithm(name);
    if (!alg) throw Errors.invalidRequest(`unsupported trailer "${name}"`);
    out.push(alg);
  }
  return out;
}

/** Pulls framed data out of a byte stream without copying more than needed. */
class ChunkReader {
  private readonly it: AsyncIterator<Buffer>;
  private pieces: Buffer[] = [];
  private length = 0;
  private ended = false;

  constructor(source: AsyncIterable<Buffer>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    if (this.ended) return false;
    const r = await this.it.next();
    if (r.done) {
      this.ended = true;
      return false;
    }
    const b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value as Uint8Array);
    if (b.length > 0) {
      this.pieces.push(b);
      this.length += b.length;
    }
    return true;
  }

  private takeBytes(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.pieces[0];
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.pieces.shift();
      else this.pieces[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let filled = 0;
      while (filled < n) {
        const p = this.pieces[0];
        const use = Math.min(p.length, n - filled);
        p.copy(out, filled, 0, use);
        filled += use;
        if (use === p.length) this.pieces.shift();
        else this.pieces[0] = p.subarray(use);
      }
    }
    this.length -= n;
    return out;
  }

  /** Up to n leading bytes: a view of the first piece, or a copy of at most n bytes when they span pieces. */
  private head(n: number): Buffer {
    const first = this.pieces[0];
    if (first === undefined) return Buffer.alloc(0);
    if (first.length >= n || this.pieces.length === 1) return first.subarray(0, n);
    const out = Buffer.allocUnsafe(Math.min(n, this.length));
    let filled = 0;
    for (const p of this.pieces) {
      if (filled === out.length) break;
      filled += p.copy(out, filled, 0, Math.min(p.length, out.length - filled));
    }
    return out;
  }

  /** The next CRLF-terminated line (without CRLF); with `eofOk`, null at the end of the body. */
  async line(eofOk: true): Promise<string | null>;
  async line(): Promise<string>;
  async line(eofOk = false): Promise<string | null> {
    for (;;) {
      // Only the first MAX_LINE_BYTES can hold the line: join no more than that (the rest is chunk data).
      const joined = this.head(MAX_LINE_BYTES + 2);
      const idx = joined.indexOf('\r\n');
      if (idx >= 0) {
        const text = joined.subarray(0, idx).toString('latin1');
        this.takeBytes(idx + 2);
        return text;
      }
      if (this.length > MAX_LINE_BYTES) throw Errors.invalidRequest('malformed aws-chunked encoding: line too long');
      if (!(await this.fill())) {
        if (eofOk) {
          if (this.length === 0) return null;
          return this.takeBytes(this.length).toString('latin1');
        }
        throw Errors.incompleteBody();
      }
    }
  }

  /** The next n bytes as views of the pieces they arrived in. */
  async takePieces(n: number): Promise<Buffer[]> {
    while (this.length < n) if (!(await this.fill())) throw Errors.incompleteBody();
    const out: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const use = Math.min(left, this.pieces[0].length);
      out.push(this.takeBytes(use));
      left -= use;
    }
    return out;
  }

  async *stream(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.length === 0 && !(await this.fill())) throw Errors.incompleteBody();
      const use = Math.min(left, this.pieces[0]?.length ?? 0);
      if (use === 0) continue;
      left -= use;
      yield this.takeBytes(use);
    }
  }

  async expectEnd(): Promise<void> {
    while (this.length === 0 && (await this.fill())) {
      // wait for either data or the end
    }
    if (this.length > 0) {
      const rest = this.takeBytes(this.length);
      if (rest.toString('latin1').trim() !== '') throw Errors.invalidRequest('malformed aws-chunked encoding: data after the final chunk');
    }
  }
}

export { S3Error, isChecksumAlgorithm };
