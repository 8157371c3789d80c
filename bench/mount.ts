/**
 * Mount benchmark: a real kernel mount (`s3cryptfs mount`, a child process) over an S3 endpoint.
 * By default everything runs locally: an embedded s3rver (a child process), a fresh bucket and key.
 *
 *   npm run bench:mount -- [--size-mib 256] [--files 1000] [--fuse fuse-native] [--keep]
 *
 * Against a real endpoint: set AWS_ENDPOINT_URL (or leave it unset for AWS), credentials as usual,
 * and pass --bucket NAME (an existing, empty bucket or a prefix: s3://NAME/PREFIX is initialised).
 *
 * Workloads (each through the mount, timed from a child process):
 *   write       cp of one large random file (sequential, streamed upload)
 *   read        cat of that file after a remount (cold: nothing cached)
 *   small       create N small files (4 KiB) in 10 directories, one process
 *   stat-cold   find -ls over them after a remount (LIST per directory + HEAD per file)
 *   stat-warm   the same again (attribute cache)
 *   rewrite     dd conv=notrunc of 4 KiB in the middle of the large file (spool + re-upload)
 *   rm          rm -rf of the small files
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { startEmbeddedS3 } from '../src/store/embedded-s3.js';

const { values: opts } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '256' },
    files: { type: 'string', default: '1000' },
    fuse: { type: 'string', default: 'fuse-native' },
    bucket: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const SIZE_MIB = Number(opts['size-mib']);
const FILES = Number(opts.files);
const CLI = fileURLToPath(new URL('../bin/s3cryptfs.js', import.meta.url));
const q = JSON.stringify;

function sh(cmd: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('/bin/bash', ['-c', cmd], { env: { ...process.env, ...env }, maxBuffer: 1 << 28 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd}: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

const work = await mkdtemp(path.join(tmpdir(), 's3cryptfs-bench-'));
const cleanups: (() => Promise<unknown>)[] = [async () => { if (!opts.keep) await rm(work, { recursive: true, force: true }); }];
let mountChild: ChildProcess | null = null;
const mnt = path.join(work, 'mnt');

async function mountIt(env: NodeJS.ProcessEnv, location: string): Promise<void> {
  const child = spawn(process.execPath, [CLI, 'mount', location, mnt, '--fuse', opts.fuse!], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  mountChild = child;
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('mounted ')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`mount exited with ${code}`)));
  });
}

async function unmountIt(): Promise<void> {
  const child = mountChild;
  if (!child) return;
  mountChild = null;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

try {
  let env: NodeJS.ProcessEnv = { S3CRYPTFS_FROM_SOURCE: '1', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
  let location: string;
  if (opts.bucket) {
    location = `s3://${opts.bucket}`;
  } else {
    const s3 = await startEmbeddedS3({ dir: path.join(work, 's3'), buckets: ['bench'] });
    cleanups.unshift(() => s3.stop());
    env = { ...env, AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey, AWS_ENDPOINT_URL: s3.endpoint, AWS_REGION: 'us-east-1' };
    location = 's3://bench';
  }
  const keyFile = path.join(work, 'bench.key');
  await writeFile(keyFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
  env.S3CRYPTFS_KEY_FILE = keyFile;
  await sh(`node ${q(CLI)} init ${location}`, env);
  await mkdir(mnt);
  const src = path.join(work, 'src.bin');
  await sh(`head -c ${SIZE_MIB}M /dev/urandom > ${q(src)}`);

  const rows: [string, string][] = [];
  const mbps = (bytes: number, s: number) => `${(bytes / 1e6 / s).toFixed(1)} MB/s (${s.toFixed(2)} s)`;
  const rate = (n: number, s: number, what: string) => `${(n / s).toFixed(0)} ${what}/s (${s.toFixed(2)} s)`;

  await mountIt(env, location);
  rows.push(['write', mbps(SIZE_MIB * 2 ** 20, await timed(() => sh(`cp ${q(src)} ${q(path.join(mnt, 'big.bin'))}`)))]);
  const dirs = 10;
  rows.push(['small', rate(FILES, await timed(() => sh(`cd ${q(mnt)} && for d in $(seq 1 ${dirs}); do mkdir -p s/d$d; for f in $(seq 1 ${Math.ceil(FILES / dirs)}); do head -c 4096 /dev/urandom > s/d$d/f$f; done; done`)), 'files')]);
  await unmountIt();

  await mountIt(env, location);
  rows.push(['read (cold)', mbps(SIZE_MIB * 2 ** 20, await timed(() => sh(`cat ${q(path.join(mnt, 'big.bin'))} > /dev/null`)))]);
  rows.push(['stat-cold', rate(FILES, await timed(() => sh(`find ${q(path.join(mnt, 's'))} -ls > /dev/null`)), 'entries')]);
  rows.push(['stat-warm', rate(FILES, await timed(() => sh(`find ${q(path.join(mnt, 's'))} -ls > /dev/null`)), 'entries')]);
  rows.push(['rewrite 4 KiB', `${(await timed(() => sh(`dd if=/dev/urandom of=${q(path.join(mnt, 'big.bin'))} bs=4096 count=1 seek=1000 conv=notrunc status=none`))).toFixed(2)} s (whole ${SIZE_MIB} MiB object re-uploaded)`]);
  rows.push(['rm -rf', rate(FILES, await timed(() => sh(`rm -rf ${q(path.join(mnt, 's'))}`)), 'files')]);
  await unmountIt();

  const version = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')).version as string;
  console.log(`s3cryptfs ${version} mount benchmark (--fuse ${opts.fuse}, ${opts.bucket ? location : 'embedded s3rver'}, ${SIZE_MIB} MiB file, ${FILES} small files)`);
  for (const [k, v] of rows) console.log(`  ${k.padEnd(14)} ${v}`);
} finally {
  await unmountIt().catch(() => {});
  for (const fn of cleanups) await fn().catch(() => {});
}
