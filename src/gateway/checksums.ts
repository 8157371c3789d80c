/**
 * The additional checksums S3 clients may send (x-amz-checksum-ALG, as a header or as a trailer of
 * an aws-chunked body): CRC32, CRC32C, CRC64NVME, SHA1, SHA256. Values are base64 of the big-endian
 * digest. The gateway verifies them against the body it received.
 */
import { createHash, type Hash } from 'node:crypto';
import zlib from 'node:zlib';

export const CHECKSUM_ALGORITHMS = ['crc32', 'crc32c', 'crc64nvme', 'sha1', 'sha256'] as const;
export type ChecksumAlgorithm = (typeof CHECKSUM_ALGORITHMS)[number];

export interface Checksummer {
  update(data: Buffer): void;
  /** base64 of the digest. */
  digest(): string;
}

function table32(poly: number): Uint32Array {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
}

let crc32cTable: Uint32Array | undefined;
let crc64Tables: { lo: Uint32Array; hi: Uint32Array } | undefined;

function crc64TablesFor(): { lo: Uint32Array; hi: Uint32Array } {
  if (crc64Tables) return crc64Tables;
  // Reflected polynomial 0x9a6c9329ac4bc9b5 (CRC-64/NVME), as two 32-bit halves.
  const polyHi = 0x9a6c9329;
  const polyLo = 0xac4bc9b5;
  const lo = new Uint32Array(256);
  const hi = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let l = i;
    let h = 0;
    for (let k = 0; k < 8; k++) {
      const bit = l & 1;
      l = ((l >>> 1) | ((h & 1) << 31)) >>> 0;
      h = h >>> 1;
      if (bit) {
        l = (l ^ polyLo) >>> 0;
        h = (h ^ polyHi) >>> 0;
      }
    }
    lo[i] = l;
    hi[i] = h;
  }
  crc64Tables = { lo, hi };
  return crc64Tables;
}

function u32be(n: number): string {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n >>> 0);
  return b.toString('base64');
}

class Crc32 implements Checksummer {
  private crc = 0;
  update(data: Buffer): void {
    this.crc = zlib.crc32(data, this.crc);
  }
  digest(): string {
    return u32be(this.crc);
  }
}

class Crc32c implements Checksummer {
  private crc = 0xffffffff;
  private readonly t = (crc32cTable ??= table32(0x82f63b78));
  update(data: Buffer): void {
    let c = this.crc;
    const t = this.t;
    for (let i = 0; i < data.length; i++) c = t[(c ^ data[i]) & 0xff] ^ (c >>> 8);
    this.crc = c >>> 0;
  }
  digest(): string {
    return u32be(~this.crc);
  }
}

class Crc64Nvme implements Checksummer {
  private lo = 0xffffffff;
  private hi = 0xffffffff;
  private readonly t = crc64TablesFor();
  update(data: Buffer): void {
    let lo = this.lo;
    let hi = this.hi;
    const tl = this.t.lo;
    const th = this.t.hi;
    for (let i = 0; i < data.length; i++) {
      const idx = (lo ^ data[i]) & 0xff;
      lo = ((lo >>> 8) | (hi << 24)) ^ tl[idx];
      hi = (hi >>> 8) ^ th[idx];
    }
    this.lo = lo >>> 0;
    this.hi = hi >>> 0;
  }
  digest(): string {
    const b = Buffer.allocUnsafe(8);
    b.writeUInt32BE(~this.hi >>> 0, 0);
    b.writeUInt32BE(~this.lo >>> 0, 4);
    return b.toString('base64');
  }
}

class HashChecksum implements Checksummer {
  private readonly h: Hash;
  constructor(alg: string) {
    this.h = createHash(alg);
  }
  update(data: Buffer): void {
    this.h.update(data);
  }
  digest(): string {
    return this.h.digest('base64');
  }
}

export function newChecksummer(alg: ChecksumAlgorithm): Checksummer {
  switch (alg) {
    case 'crc32': return new Crc32();
    case 'crc32c': return new Crc32c();
    case 'crc64nvme': return new Crc64Nvme();
    case 'sha1': return new HashChecksum('sha1');
    case 'sha256': return new HashChecksum('sha256');
  }
}

export function isChecksumAlgorithm(name: string): name is ChecksumAlgorithm {
  return (CHECKSUM_ALGORITHMS as readonly string[]).includes(name);
}

/** "x-amz-checksum-crc32" -> "crc32", or undefined for other headers. */
export function checksumHeaderAlgorithm(header: string): ChecksumAlgorithm | undefined {
  const m = /^x-amz-checksum-([a-z0-9]+)$/.exec(header.toLowerCase());
  return m && isChecksumAlgorithm(m[1]) ? m[1] : undefined;
}
