/** `s3cryptfs stat s3://BUCKET/KEY...`: plaintext and ciphertext facts about objects. */
import { decodeHeader, HEADER_SIZE } from '../format/header.js';
import { IntegrityError } from '../format/errors.js';
import type { CliCommand } from './command.js';
import { openBucket } from './bucket.js';
import { CliError } from './errors.js';
import { ExitCode } from './exit-codes.js';
import { formatDate, humanSize, writeOut } from './output.js';
import { parseS3Url } from './s3url.js';

export interface ObjectFacts {
  object: string;
  /** "s3cryptfs", or "aws-cse-v1"/"aws-cse-v2"/"aws-cse-v3" for AWS S3 Encryption Client objects. */
  format: string;
  size: number;
  ciphertextSize: number;
  etag: string;
  lastModified: string;
  s3Key: string;
  keyId?: string;
  cipher: string;
  chunkSize?: number;
  /** AWS S3 Encryption Client objects only. */
  wrapAlgorithm?: string;
  envelope?: string;
  materialDescription?: Record<string, string>;
  authenticated?: boolean;
  attributes: Record<string, string>;
}

export const statCommand: CliCommand = {
  command: 'stat <objects..>',
  describe: 'Show plaintext size, ciphertext size, etag, key id, cipher and chunk size of objects',
  builder: (y) =>
    y
      .positional('objects', { type: 'string', array: true, describe: 's3://BUCKET/KEY ...' })
      .option('json', { type: 'boolean', describe: 'One JSON object per line' }),
  async run(args, rt) {
    const out: string[] = [];
    for (const arg of args.objects as string[]) {
      const url = parseS3Url(arg, 'object');
      if (url.key === '' || url.key.endsWith('/')) throw new CliError(ExitCode.USAGE, `${arg} names a directory, not an object`);
      const { engine, store, bucket, path } = await openBucket(rt, url, 'file');
      const st = await engine.stat(path);
      if (!st) throw new CliError(ExitCode.NOT_FOUND, `no such object: ${arg}`);
      const s3Key = engine.objectKey(path);
      const info = await store.head(bucket, s3Key);
      if (!info) throw new CliError(ExitCode.NOT_FOUND, `no such object: ${arg}`);
      const cse = await engine.awsCseFacts(path);
      if (cse) {
        const facts: ObjectFacts = {
          object: arg, format: cse.format, size: st.size, ciphertextSize: info.size, etag: info.etag,
          lastModified: info.lastModified.toISOString(), s3Key, cipher: cse.contentAlgorithm, wrapAlgorithm: cse.wrapAlgorithm,
          envelope: cse.envelope, materialDescription: cse.materialDescription, authenticated: cse.authenticated, attributes: st.attributes,
        };
        out.push(args.json ? JSON.stringify(facts) : describe(facts));
        continue;
      }
      if (info.size < HEADER_SIZE) throw new IntegrityError('HEADER_TRUNCATED', `${arg} is shorter than a header (${info.size} bytes)`);
      const header = decodeHeader(await store.getRange(bucket, s3Key, 0, HEADER_SIZE, { ifMatch: info.etag }));
      const facts: ObjectFacts = {
        object: arg,
        format: 's3cryptfs',
        size: st.size,
        ciphertextSize: info.size,
        etag: info.etag,
        lastModified: info.lastModified.toISOString(),
        s3Key,
        keyId: header.keyId.toString('hex'),
        cipher: header.cipher,
        chunkSize: header.chunkSize,
        attributes: st.attributes,
      };
      out.push(args.json ? JSON.stringify(facts) : describe(facts));
    }
    await writeOut(out.join(args.json ? '\n' : '\n\n') + '\n');
  },
};

function describe(f: ObjectFacts): string {
  const lines: [string, string][] = [
    ['object', f.object],
    ['format', f.format],
    ['size', `${f.size} (${humanSize(f.size)})`],
    ['ciphertext size', `${f.ciphertextSize} (${humanSize(f.ciphertextSize)})`],
    ['etag', f.etag],
    ['last modified', formatDate(new Date(f.lastModified))],
    ['s3 key', f.s3Key],
    ['cipher', f.cipher],
  ];
  if (f.keyId !== undefined) lines.splice(lines.length - 1, 0, ['key id', f.keyId]);
  if (f.chunkSize !== undefined) lines.push(['chunk size', `${f.chunkSize} (${humanSize(f.chunkSize)})`]);
  if (f.wrapAlgorithm !== undefined) {
    lines.push(['key wrapping', f.wrapAlgorithm], ['envelope', f.envelope ?? ''], ['material desc', JSON.stringify(f.materialDescription ?? {})]);
    lines.push(['authenticated', f.authenticated ? 'yes (AES-GCM tag, checked on whole reads)' : 'no (AES-CBC has no tag)']);
  }
  for (const [k, v] of Object.entries(f.attributes).sort()) lines.push([`attr ${k}`, v]);
  return lines.map(([k, v]) => `${(k + ':').padEnd(17)} ${v}`).join('\n');
}
