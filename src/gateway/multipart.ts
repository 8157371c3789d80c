/**
 * Multipart uploads. The engine writes one serially sealed stream per object, so a client's parts
 * cannot become pieces of the final ciphertext. Instead each part is staged as its own encrypted
 * object under the store's hidden gateway directory:
 *
 *   .s3cryptfs-gateway/uploads/<uploadId>/upload               manifest (key, metadata, initiator)
 *   .s3cryptfs-gateway/uploads/<uploadId>/p<NNNNN>-<md5 hex>   part NNNNN, named by its MD5 (its ETag)
 *
 * CompleteMultipartUpload streams the chosen parts, in order, through one engine writer into the
 * final object (nothing is visible before that writer closes), then deletes the staging objects.
 * The object's ETag is S3's: MD5 of the concatenated binary part MD5s, "-" and the part count.
 * Completing re-reads and re-encrypts the data, so it takes time in proportion to the size; while
 * it runs, the response is started and kept alive with whitespace, as S3 does.
 */
import { createHash, randomBytes } from 'node:crypto';
import { EngineError } from '../engine/index.js';
import type { OpenBucket } from './buckets.js';
import { Errors, errorXml } from './errors.js';
import type { Gateway, RequestContext } from './gateway.js';
import { mapLimit, parseCopySource, parseRange } from './gateway.js';
import { compareKeys, GATEWAY_DIR } from './listing.js';
import { attributesFromHeaders, clientEtag, multipartEtag, withEtag } from './meta.js';
import { Payload } from './payload.js';
import { childrenNamed, childText, s3Root, xmlElement, xmlFields } from './xml.js';

const UPLOADS_DIR = `${GATEWAY_DIR}/uploads`;
const MIN_PART_BYTES = 5 * 1024 * 1024;
const MAX_PARTS = 10_000;
/** A Complete that takes longer than this starts its 200 response and sends whitespace. */
const KEEPALIVE_AFTER_MS = 5_000;
const KEEPALIVE_EVERY_MS = 10_000;

interface Manifest {
  key: string;
  attributes: Record<string, string>;
  initiated: string;
  initiator: string;
}

interface StagedPart {
  partNumber: number;
  md5: string;
  size: number;
  lastModified: Date;
  path: string;
}

export class MultipartManager {
  private readonly manifests = new Map<string, Manifest>();

  constructor(private readonly gw: Gateway) {}

  private dir(uploadId: string): string {
    return `${UPLOADS_DIR}/${uploadId}`;
  }

  async create(ctx: RequestContext, b: OpenBucket): Promise<void> {
    const key = ctx.key!;
    this.gw.objectPath(key);
    if (key.endsWith('/')) throw Errors.invalidArgument('multipart uploads of directory markers are not supported');
    const attributes = attributesFromHeaders(ctx.req.headers);
    await new Payload(ctx.req, ctx.req.headers, ctx.auth, 1024 * 1024).drain();
    const uploadId = randomBytes(16).toString('hex');
    const manifest: Manifest = { key, attributes, initiated: new Date().toISOString(), initiator: ctx.auth!.credential.accessKeyId };
    await b.engine.putBuffer(`${this.dir(uploadId)}/upload`, Buffer.from(JSON.stringify(manifest)), {});
    this.manifests.set(`${b.spec.name}/${uploadId}`, manifest);
    this.gw.sendXml(ctx, 200, s3Root('InitiateMultipartUploadResult', xmlFields([['Bucket', b.spec.name], ['Key', key], ['UploadId', uploadId]])));
  }

  private async manifest(b: OpenBucket, uploadId: string | undefined, key: string | undefined): Promise<Manifest> {
    if (!uploadId || !/^[0-9a-f]{32}$/.test(uploadId)) throw Errors.noSuchUpload(uploadId ?? '');
    const id = `${b.spec.name}/${uploadId}`;
    let m = this.manifests.get(id);
    if (!m) {
      try {
        m = JSON.parse((await b.engine.getBuffer(`${this.dir(uploadId)}/upload`)).toString('utf8')) as Manifest;
      } catch (err) {
        if (err instanceof EngineError && err.code === 'NOT_FOUND') throw Errors.noSuchUpload(uploadId);
        throw err;
      }
      this.manifests.set(id, m);
    }
    if (key !== undefined && m.key !== key) throw Errors.noSuchUpload(uploadId);
    return m;
  }

  private async parts(b: OpenBucket, uploadId: string): Promise<StagedPart[]> {
    const out = new Map<number, StagedPart>();
    for await (const page of b.engine.listAll(this.dir(uploadId) + '/')) {
      for (const f of page.files) {
        const m = /\/p(\d{5})-([0-9a-f]{32})$/.exec(f.path);
        if (!m) continue;
        const part: StagedPart = { partNumber: Number(m[1]), md5: m[2], size: f.size, lastModified: f.lastModified, path: f.path };
        const prev = out.get(part.partNumber);
        if (!prev || prev.lastModified <= part.lastModified) out.set(part.partNumber, part);
      }
    }
    return [...out.values()].sort((x, y) => x.partNumber - y.partNumber);
  }

  async uploadPart(ctx: RequestContext, b: OpenBucket): Promise<void> {
    const q = ctx.query;
    const partText = q.get('partNumber') ?? '';
    if (!/^\d+$/.test(partText) || Number(partText) < 1 || Number(partText) > MAX_PARTS) {
      throw Errors.invalidArgument('Part number must be an integer between 1 and 10000, inclusive', { ArgumentName: 'partNumber', ArgumentValue: partText });
    }
    const partNumber = Number(partText);
    const uploadId = q.get('uploadId');
    await this.manifest(b, uploadId, ctx.key);
    const dir = this.dir(uploadId!);
    const partName = (md5hex: string) => `${dir}/p${String(partNumber).padStart(5, '0')}-${md5hex}`;
    const copySource = ctx.req.headers['x-amz-copy-source'];
    let source: AsyncIterable<Buffer>;
    let length: number;
    let knownMd5: string | undefined;
    /** A client body: it computes the MD5 itself while it verifies, so the part is not hashed twice. */
    let payload: Payload | undefined;
    let lastModified = new Date();
    if (copySource !== undefined) {
      const src = parseCopySource(String(copySource));
      if (!this.gw.registry.spec(src.bucket)) throw Errors.accessDenied();
      const allowed = ctx.auth!.credential.buckets;
      if (allowed && !allowed.includes(src.bucket)) throw Errors.accessDenied();
      const sb = await this.gw.bucket(ctx, src.bucket);
      const srcPath = this.gw.objectPath(src.key);
      const st = await this.gw.statObject(sb, srcPath);
      if (!st) throw Errors.noSuchKey(src.key);
      const ifMatch = ctx.req.headers['x-amz-copy-source-if-match'];
      if (ifMatch !== undefined && String(ifMatch).replace(/"/g, '') !== clientEtag(st).replace(/"/g, '')) throw Errors.preconditionFailed('x-amz-copy-source-If-Match');
      const rangeHeader = ctx.req.headers['x-amz-copy-source-range'];
      const range = rangeHeader !== undefined ? parseRange(String(rangeHeader), st.size) : null;
      if (rangeHeader !== undefined && !range) throw Errors.invalidArgument('The x-amz-copy-source-range value must be of the form bytes=first-last');
      await new Payload(ctx.req, ctx.req.headers, ctx.auth, 1024 * 1024).drain();
      source = (range ? sb.engine.readStream(srcPath, { start: range.start, end: range.end }) : sb.engine.readStream(srcPath)) as AsyncIterable<Buffer>;
      length = range ? range.end - range.start : st.size;
      lastModified = st.lastModified;
    } else {
      payload = new Payload(ctx.req, ctx.req.headers, ctx.auth, this.gw.opts.maxObjectBytes);
      if (payload.length === undefined) throw Errors.missingContentLength();
      payload.wantMd5 = true;
      source = payload;
      length = payload.length;
      knownMd5 = payload.expectedMd5?.toString('hex');
    }
    const md5 = payload ? undefined : createHash('md5');
    const md5Hex = () => (payload ? payload.done.md5!.toString('hex') : md5!.digest('hex'));
    let size = 0;
    let digest: string;
    if (knownMd5 === undefined && length <= this.gw.opts.md5BufferMaxBytes) {
      // Small enough to hold: the part is named by its MD5 right away. The pieces go to the writer
      // as they arrived (no joined copy).
      const pieces: Buffer[] = [];
      for await (const piece of source) {
        md5?.update(piece);
        size += piece.length;
        pieces.push(piece);
      }
      digest = md5Hex();
      const writer = b.engine.createWriter(partName(digest), {});
      try {
        for (const piece of pieces) await writer.write(piece);
      } catch (err) {
        await writer.abort();
        throw err;
      }
      await writer.close();
    } else {
      // Streamed: under the declared MD5's name, or a temporary name that is then copied to the final one.
      const target = knownMd5 !== undefined ? partName(knownMd5) : `${dir}/t${String(partNumber).padStart(5, '0')}-${randomBytes(8).toString('hex')}`;
      const writer = b.engine.createWriter(target, {});
      try {
        for await (const piece of source) {
          md5?.update(piece);
          size += piece.length;
          await writer.write(piece);
        }
      } catch (err) {
        await writer.abort();
        throw err;
      }
      await writer.close();
      digest = md5Hex();
      if (knownMd5 === undefined) {
        try {
          await b.engine.copy(target, partName(digest));
        } finally {
          await b.engine.delete(target).catch(() => {});
        }
      }
    }
    const final = partName(digest);
    // An earlier upload of the same part number is replaced.
    const stale = (await this.parts(b, uploadId!)).filter((p) => p.partNumber === partNumber && p.path !== final);
    if (stale.length > 0) await b.engine.deleteMany(stale.map((p) => p.path));
    this.gw.opts.metrics?.bytesEncrypted.inc(size);
    const etag = `"${digest}"`;
    if (copySource !== undefined) {
      this.gw.sendXml(ctx, 200, s3Root('CopyPartResult', xmlFields([['LastModified', lastModified.toISOString()], ['ETag', etag]])));
    } else {
      this.gw.send(ctx, 200, { etag });
    }
  }

  async complete(ctx: RequestContext, b: OpenBucket): Promise<void> {
    const uploadId = ctx.query.get('uploadId');
    const manifest = await this.manifest(b, uploadId, ctx.key);
    const root = await this.gw.readXml(ctx);
    if (root.name !== 'CompleteMultipartUpload') throw Errors.malformedXml();
    const requested = childrenNamed(root, 'Part').map((p) => {
      const n = childText(p, 'PartNumber');
      const etag = childText(p, 'ETag');
      if (n === undefined || !/^\d+$/.test(n.trim()) || etag === undefined) throw Errors.malformedXml();
      return { partNumber: Number(n.trim()), md5: etag.trim().replace(/^"|"$/g, '').replace(/&quot;/g, '').toLowerCase() };
    });
    if (requested.length === 0) throw Errors.malformedXml('The XML you provided was not well-formed or did not validate against our published schema (no parts).');
    for (let i = 1; i < requested.length; i++) if (requested[i].partNumber <= requested[i - 1].partNumber) throw Errors.invalidPartOrder();
    const staged = new Map((await this.parts(b, uploadId!)).map((p) => [p.partNumber, p]));
    const chosen = requested.map((r) => {
      const p = staged.get(r.partNumber);
      if (!p || p.md5 !== r.md5) throw Errors.invalidPart();
      return p;
    });
    for (let i = 0; i < chosen.length - 1; i++) if (chosen[i].size < MIN_PART_BYTES) throw Errors.entityTooSmall();
    const total = chosen.reduce((n, p) => n + p.size, 0);
    if (total > this.gw.opts.maxObjectBytes) throw Errors.entityTooLarge(this.gw.opts.maxObjectBytes);
    const etag = multipartEtag(chosen.map((p) => Buffer.from(p.md5, 'hex')));
    const path = manifest.key;
    const attributes = withEtag(manifest.attributes, etag, total);

    // From here on the answer may already be started: errors go into the body, as S3 does.
    const { res } = ctx;
    let started = false;
    let ticker: NodeJS.Timeout | undefined;
    const starter = setTimeout(() => {
      started = true;
      this.gw.setCommonHeaders(ctx);
      res.writeHead(200, { 'content-type': 'application/xml' });
      res.write('<?xml version="1.0" encoding="UTF-8"?>\n');
      ticker = setInterval(() => res.write(' '), KEEPALIVE_EVERY_MS);
    }, KEEPALIVE_AFTER_MS);
    try {
      const write = async () => {
        const writer = b.engine.createWriter(path, { attributes });
        try {
          for (const p of chosen) {
            for await (const piece of b.engine.readStream(p.path)) await writer.write(piece as Buffer);
          }
        } catch (err) {
          await writer.abort();
          throw err;
        }
        const written = await writer.close();
        this.gw.rememberEtag(b.spec.name, path, written.etag, etag);
      };
      const ifNoneMatch = ctx.req.headers['if-none-match'];
      if (ifNoneMatch !== undefined) {
        if (ifNoneMatch.trim() !== '*') throw Errors.notImplemented('If-None-Match only supports "*"');
        await lockRun(this.gw, b, path, async () => {
          if (await this.gw.statObject(b, path)) throw Errors.preconditionFailed('If-None-Match');
          await write();
        });
      } else {
        await write();
      }
      await this.removeUpload(b, uploadId!);
      const xml = xmlElement('CompleteMultipartUploadResult', xmlFields([
        ['Location', `/${b.spec.name}/${path}`], ['Bucket', b.spec.name], ['Key', path], ['ETag', etag],
      ]), ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"');
      if (started) res.end(xml);
      else this.gw.sendXml(ctx, 200, s3Root('CompleteMultipartUploadResult', xmlFields([
        ['Location', `/${b.spec.name}/${path}`], ['Bucket', b.spec.name], ['Key', path], ['ETag', etag],
      ])));
    } catch (err) {
      if (!started) throw err;
      const e = this.gw.toS3Error(err);
      res.end(errorXml(e, ctx.resource, ctx.id).replace(/^<\?xml[^>]*>\n/, ''));
    } finally {
      clearTimeout(starter);
      if (ticker) clearInterval(ticker);
    }
  }

  private async removeUpload(b: OpenBucket, uploadId: string): Promise<void> {
    const paths: string[] = [];
    for await (const page of b.engine.listAll(this.dir(uploadId) + '/')) for (const f of page.files) paths.push(f.path);
    // The manifest goes last, so a crash half-way leaves an upload that can still be aborted.
    const manifest = `${this.dir(uploadId)}/upload`;
    const others = paths.filter((p) => p !== manifest);
    if (others.length > 0) await b.engine.deleteMany(others);
    await b.engine.delete(manifest);
    this.manifests.delete(`${b.spec.name}/${uploadId}`);
  }

  async abort(ctx: RequestContext, b: OpenBucket): Promise<void> {
    const uploadId = ctx.query.get('uploadId');
    await this.manifest(b, uploadId, ctx.key);
    await this.removeUpload(b, uploadId!);
    this.gw.send(ctx, 204);
  }

  async listParts(ctx: RequestContext, b: OpenBucket): Promise<void> {
    const uploadId = ctx.query.get('uploadId');
    const m = await this.manifest(b, uploadId, ctx.key);
    const marker = Number(ctx.query.get('part-number-marker') ?? '0') || 0;
    const maxParts = Math.min(1000, Number(ctx.query.get('max-parts') ?? '1000') || 1000);
    const all = (await this.parts(b, uploadId!)).filter((p) => p.partNumber > marker);
    const page = all.slice(0, maxParts);
    const truncated = all.length > page.length;
    const owner = xmlElement('Owner', xmlFields([['ID', m.initiator], ['DisplayName', m.initiator]]));
    const xml = s3Root('ListPartsResult', [
      ...xmlFields([['Bucket', b.spec.name], ['Key', m.key], ['UploadId', uploadId!]]),
      xmlElement('Initiator', xmlFields([['ID', m.initiator], ['DisplayName', m.initiator]])),
      owner,
      ...xmlFields([
        ['StorageClass', 'STANDARD'], ['PartNumberMarker', marker], ['NextPartNumberMarker', page.length ? page[page.length - 1].partNumber : marker],
        ['MaxParts', maxParts], ['IsTruncated', truncated],
      ]),
      ...page.map((p) => xmlElement('Part', xmlFields([
        ['PartNumber', p.partNumber], ['LastModified', p.lastModified.toISOString()], ['ETag', `"${p.md5}"`], ['Size', p.size],
      ]))),
    ]);
    this.gw.sendXml(ctx, 200, xml);
  }

  async listUploads(ctx: RequestContext, b: OpenBucket): Promise<void> {
    const prefix = ctx.query.get('prefix') ?? '';
    const keyMarker = ctx.query.get('key-marker') ?? '';
    const maxUploads = Math.min(1000, Number(ctx.query.get('max-uploads') ?? '1000') || 1000);
    const ids: string[] = [];
    for await (const page of b.engine.listAll(UPLOADS_DIR + '/')) {
      for (const d of page.dirs) {
        const m = /\/([0-9a-f]{32})\/$/.exec(d);
        if (m) ids.push(m[1]);
      }
    }
    const found = await mapLimit(ids, 8, async (id) => {
      try {
        return { id, m: await this.manifest(b, id, undefined) };
      } catch {
        return null;
      }
    });
    const uploads = found
      .filter((u): u is { id: string; m: Manifest } => u !== null && u.m.key.startsWith(prefix) && (keyMarker === '' || compareKeys(u.m.key, keyMarker) > 0))
      .sort((x, y) => compareKeys(x.m.key, y.m.key) || x.m.initiated.localeCompare(y.m.initiated));
    const page = uploads.slice(0, maxUploads);
    const truncated = uploads.length > page.length;
    const last = page[page.length - 1];
    const xml = s3Root('ListMultipartUploadsResult', [
      ...xmlFields([
        ['Bucket', b.spec.name], ['KeyMarker', keyMarker], ['UploadIdMarker', ctx.query.get('upload-id-marker') ?? ''],
        ['NextKeyMarker', truncated ? last?.m.key : undefined], ['NextUploadIdMarker', truncated ? last?.id : undefined],
        ['Prefix', prefix], ['MaxUploads', maxUploads], ['IsTruncated', truncated],
      ]),
      ...page.map((u) => xmlElement('Upload', [
        ...xmlFields([['Key', u.m.key], ['UploadId', u.id]]),
        xmlElement('Initiator', xmlFields([['ID', u.m.initiator], ['DisplayName', u.m.initiator]])),
        xmlElement('Owner', xmlFields([['ID', u.m.initiator], ['DisplayName', u.m.initiator]])),
        ...xmlFields([['StorageClass', 'STANDARD'], ['Initiated', u.m.initiated]]),
      ])),
    ]);
    this.gw.sendXml(ctx, 200, xml);
  }

  /** Aborts uploads initiated more than `maxAgeMs` ago; returns how many. */
  async expire(b: OpenBucket, maxAgeMs: number): Promise<number> {
    let n = 0;
    const ids: string[] = [];
    for await (const page of b.engine.listAll(UPLOADS_DIR + '/')) {
      for (const d of page.dirs) {
        const m = /\/([0-9a-f]{32})\/$/.exec(d);
        if (m) ids.push(m[1]);
      }
    }
    for (const id of ids) {
      let initiated = 0;
      try {
        initiated = Date.parse((await this.manifest(b, id, undefined)).initiated);
      } catch {
        initiated = 0; // no readable manifest: an orphan
      }
      if (Date.now() - initiated > maxAgeMs) {
        const paths: string[] = [];
        for await (const page of b.engine.listAll(this.dir(id) + '/')) for (const f of page.files) paths.push(f.path);
        if (paths.length) await b.engine.deleteMany(paths);
        this.manifests.delete(`${b.spec.name}/${id}`);
        n++;
      }
    }
    return n;
  }
}

function lockRun(gw: Gateway, b: OpenBucket, path: string, fn: () => Promise<void>): Promise<void> {
  return gw.withKeyLock(b, path, fn);
}
