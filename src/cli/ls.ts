/** `s3cryptfs ls [-l] [-r] s3://BUCKET[/DIR]`: list plaintext names and sizes. */
import type { EntryInfo } from '../engine/index.js';
import type { CliCommand } from './command.js';
import { openBucket, type OpenedBucket } from './bucket.js';
import { CliError } from './errors.js';
import { ExitCode } from './exit-codes.js';
import { formatDate, writeOut } from './output.js';
import { parseS3Url } from './s3url.js';

interface Row {
  name: string;
  dir: boolean;
  size?: number;
  lastModified?: Date;
}

export const lsCommand: CliCommand = {
  command: 'ls <location>',
  describe: 'List plaintext names (and sizes with -l)',
  builder: (y) =>
    y
      .positional('location', { type: 'string', describe: 's3://BUCKET[/DIR]' })
      .option('long', { alias: 'l', type: 'boolean', describe: 'Show size (bytes) and modification time' })
      .option('recursive', { alias: 'r', type: 'boolean', describe: 'Everything below the directory' })
      .option('json', { type: 'boolean', describe: 'One JSON object per line' })
      .example('$0 ls -l s3://my-bucket/docs/', ''),
  async run(args, rt) {
    const url = parseS3Url(args.location as string);
    const opened = await openBucket(rt, url, 'dir');
    const rows = await listRows(opened, args.recursive === true);
    if (rows === null) throw new CliError(ExitCode.NOT_FOUND, `no such file or directory: ${args.location as string}`);
    rows.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const lines = rows.map((r) => (args.json ? JSON.stringify(r) : args.long ? longLine(r) : r.name));
    if (lines.length) await writeOut(lines.join('\n') + '\n');
    reportSkipped(opened);
  },
};

/** Rows relative to the listed directory; a single row for a file; null when nothing is there. */
async function listRows(opened: OpenedBucket, recursive: boolean): Promise<Row[] | null> {
  const { engine } = opened;
  const dir = opened.path.replace(/\/+$/, '');
  const base = dir === '' ? '' : dir + '/';
  const rows: Row[] = [];
  const fileRow = (f: EntryInfo, name: string): Row => ({ name, dir: false, size: f.size, lastModified: f.lastModified });
  for await (const page of engine.listAll(dir, { recursive })) {
    for (const f of page.files) rows.push(fileRow(f, f.path.slice(base.length)));
    for (const d of page.dirs) {
      const name = d.slice(base.length);
      if (name !== '') rows.push({ name: name.endsWith('/') ? name : name + '/', dir: true });
    }
  }
  if (rows.length > 0 || dir === '') return rows;
  if (!opened.path.endsWith('/')) {
    const st = await engine.stat(dir);
    if (st) return [fileRow(st, dir.slice(dir.lastIndexOf('/') + 1))];
  }
  return (await engine.dirExists(dir)) ? rows : null;
}

function longLine(r: Row): string {
  const size = r.dir ? 'DIR' : String(r.size);
  const when = r.lastModified ? formatDate(r.lastModified) : '-';
  return `${size.padStart(12)}  ${when.padEnd(20)}  ${r.name}`;
}

/** Listings skip objects that are not ours (undecryptable name, impossible size): say so once. */
export function reportSkipped(opened: OpenedBucket): void {
  if (opened.warnings.length === 0) return;
  process.stderr.write(
    `s3cryptfs: warning: skipped ${opened.warnings.length} object(s) that are not readable with this key or not s3cryptfs objects (run \`s3cryptfs verify\` for details)\n`,
  );
}
