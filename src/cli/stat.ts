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
  size: number;
  ciphertextSize: number;
  etag: string;
  lastModified: string;
  s3Key: string;
  keyId: string;
  cipher: string;
  chunkSize: number;
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
      if (info.size < HEADER_SIZE) throw new IntegrityError('HEADER_TRUNCATED', `${arg} is shorter than a header (${info.size} bytes)`);
      const header = decodeHeader(await store.getRange(bucket, s3Key, 0, HEADER_SIZE, { ifMatch: info.etag }));
      const facts: ObjectFacts = {
        object: arg,
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
    ['size', `${f.size} (${humanSize(f.size)})`],
    ['ciphertext size', `${f.ciphertextSize} (${humanSize(f.ciphertextSize)})`],
    ['etag', f.etag],
    ['last modified', formatDate(new Date(f.lastModified))],
    ['s3 key', f.s3Key],
    ['key id', f.keyId],
    ['cipher', f.cipher],
    ['chunk size', `${f.chunkSize} (${humanSize(f.chunkSize)})`],
  ];
  for (const [k, v] of Object.entries(f.attributes).sort()) lines.push([`attr ${k}`, v]);
  return lines.map(([k, v]) => `${(k + ':').padEnd(17)} ${v}`).join('\n');
}
