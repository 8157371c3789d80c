/**
 * `s3cryptfs demo`: everything on one machine, no AWS account. Starts the embedded S3 server (s3rver in
 * a child process, data under ./.s3cryptfs-demo/s3), creates a key (./.s3cryptfs-demo/demo.key, 0600)
 * and initialises s3://demo. Then:
 *   - if `s3cryptfs mount` exists, mounts s3://demo at ./.s3cryptfs-demo/mnt in the foreground;
 *   - otherwise runs a put/get/ls round trip and shows that the bucket holds only ciphertext.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Engine, hostPreferredCipher } from '../engine/index.js';
import { DEFAULT_CHUNK_SIZE, newBucketConfig, type BucketConfig } from '../format/config.js';
import { startEmbeddedS3, type EmbeddedS3 } from '../store/embedded-s3.js';
import { ObjectStore } from '../store/store.js';
import { generateKeyFile, KeyFileSource, loadKeys, wipeKeys } from '../keys/index.js';
import { readBucketConfig } from './bucket.js';
import type { CliCommand } from './command.js';
import { CliError } from './errors.js';
import { ExitCode } from './exit-codes.js';
import { humanSize } from './output.js';
import type { Runtime } from './runtime.js';

const BUCKET = 'demo';
const MARKER = 'plaintext that the storage provider must never see';

export const demoCommand: CliCommand = {
  command: 'demo',
  describe: 'Local demo: embedded S3 server, key, bucket, then mount (or a round trip)',
  builder: (y) =>
    y
      .option('dir', { type: 'string', default: '.s3cryptfs-demo', describe: 'Working directory (S3 data, key, mount point)' })
      .option('port', { type: 'number', default: 0, describe: 'Port of the embedded S3 server (0 = any free port)' })
      .option('mount', { type: 'boolean', default: true, describe: 'Mount when `s3cryptfs mount` is available (--no-mount: round trip only)' })
      .option('serve', { type: 'boolean', default: false, describe: 'Keep the S3 server running after the round trip, until Ctrl-C' }),
  async run(args, rt) {
    const dir = path.resolve(args.dir as string);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const log = (line = '') => process.stdout.write(line + '\n');

    const s3 = await startEmbeddedS3({ dir: path.join(dir, 's3'), port: args.port as number, buckets: [BUCKET] });
    rt.onClose(() => s3.stop());
    log(`embedded S3 server (s3rver): ${s3.endpoint}, data in ${rel(path.join(dir, 's3'))}`);
    const store = new ObjectStore({
      endpoint: s3.endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    rt.onClose(() => store.destroy());

    const keyFile = path.join(dir, 'demo.key');
    if (!existsSync(keyFile)) {
      (await generateKeyFile(keyFile)).fill(0);
      log(`new key: ${rel(keyFile)} (mode 0600)`);
    }
    const source = new KeyFileSource(keyFile);
    let config = await readBucketConfig(store, BUCKET, '');
    if (!config) {
      const { keys, keyId } = await loadKeys(source);
      const fresh: BucketConfig = newBucketConfig(keys, { cipher: hostPreferredCipher(), chunkSize: DEFAULT_CHUNK_SIZE, names: 'aes-siv' });
      wipeKeys(keys);
      await Engine.init(store, BUCKET, '', fresh);
      config = fresh;
      log(`initialised s3://${BUCKET}: ${fresh.cipher}, ${humanSize(fresh.chunkSize)} chunks, encrypted names, key id ${keyId}`);
    } else {
      log(`s3://${BUCKET} already initialised (key id ${config.keyIds[0]})`);
    }
    const env = {
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      AWS_ENDPOINT_URL: s3.endpoint,
      S3CRYPTFS_KEY_FILE: keyFile,
    };

    // ---- The hook for the FUSE mount: used as soon as `s3cryptfs mount` exists. ----------------------
    let why = '';
    if (args.mount !== false) {
      if (!mountAvailable()) why = '`s3cryptfs mount` is not available';
      else if (!existsSync('/dev/fuse')) why = 'FUSE is not usable here (no /dev/fuse)';
      else {
        const mnt = path.join(dir, 'mnt');
        await mkdir(mnt, { recursive: true });
        log(`mounting s3://${BUCKET} at ${rel(mnt)} (Ctrl-C to unmount and stop)`);
        const code = await runSelf(['mount', `s3://${BUCKET}`, mnt], env, rt);
        if (code !== ExitCode.FUSE_UNAVAILABLE || rt.signal.aborted) return code;
        why = 'the mount failed';
      }
    }
    log(why ? `\n${why}: running a put/get/ls round trip instead\n` : '');
    const { keys } = await loadKeys(source, config);
    const engine = await Engine.open({ store, bucket: BUCKET, prefix: '', keys, config });
    await roundTrip(engine, log);
    await showCiphertext(store, path.join(dir, 's3', BUCKET), log);

    if (args.serve === true) {
      log('\nThe server keeps running until Ctrl-C. In another terminal, try:');
      for (const [k, v] of Object.entries(env)) log(`  export ${k}=${v}`);
      log(`  ${cliName()} ls -l -r s3://${BUCKET}`);
      await new Promise<void>((resolve) => rt.signal.addEventListener('abort', () => resolve(), { once: true }));
    } else {
      log(`\nTo keep the server running and try the CLI against it: ${cliName()} demo --serve`);
    }
    return ExitCode.OK;
  },
};

async function roundTrip(engine: Engine, log: (l?: string) => void): Promise<void> {
  const files: [string, Buffer][] = [
    ['hello.txt', Buffer.from(`hello from s3cryptfs: ${MARKER}\n`)],
    ['notes/todo.md', Buffer.from(`# todo\n- ${MARKER}\n`)],
    ['data/random.bin', randomBytes(3 * 1024 * 1024 + 123)],
  ];
  for (const [p, data] of files) {
    await engine.putBuffer(p, data);
    log(`put   ${p} (${humanSize(data.length)})`);
  }
  log('ls -l -r:');
  const listed: string[] = [];
  for await (const page of engine.listAll('', { recursive: true })) {
    for (const f of page.files) listed.push(`  ${String(f.size).padStart(10)}  ${f.path}`);
  }
  for (const l of listed.sort((a, b) => a.slice(14).localeCompare(b.slice(14)))) log(l);
  for (const [p, data] of files) {
    const back = await engine.getBuffer(p);
    if (!back.equals(data)) throw new CliError(ExitCode.INTEGRITY, `round trip mismatch for ${p}`);
    log(`get   ${p}: ${back.length} bytes, identical`);
  }
}

/** What the provider sees: the raw keys and bytes of the bucket, and no plaintext in them. */
async function showCiphertext(store: ObjectStore, dataDir: string, log: (l?: string) => void): Promise<void> {
  log('\nwhat the storage provider stores (raw S3 keys and sizes):');
  for await (const page of store.listAll(BUCKET)) {
    for (const o of page.objects) log(`  ${String(o.size).padStart(10)}  ${o.key}`);
  }
  const raw = await store.getObject(BUCKET, (await firstObjectKey(store))!);
  log(`first bytes of ${raw.info.key}: ${raw.body.subarray(0, 48).toString('hex').replace(/(..)/g, '$1 ').trim()} ...`);
  const found = await containsAnywhere(dataDir, [Buffer.from(MARKER), Buffer.from('hello.txt'), Buffer.from('todo.md')]);
  log(`plaintext content or file names found in the server's files: ${found.length ? found.join(', ') : 'none'}`);
  if (found.length) throw new CliError(ExitCode.INTEGRITY, 'plaintext leaked into the bucket');
}

async function firstObjectKey(store: ObjectStore): Promise<string | undefined> {
  const page = await store.list(BUCKET, { maxKeys: 10 });
  return page.objects.find((o) => !o.key.startsWith('.'))?.key ?? page.objects[0]?.key;
}

async function containsAnywhere(dir: string, needles: Buffer[]): Promise<string[]> {
  const hits = new Set<string>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      for (const n of needles) if (e.name.includes(n.toString())) hits.add(`name ${n.toString()}`);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        const body = await readFile(p);
        for (const n of needles) if (body.includes(n)) hits.add(`"${n.toString()}" in ${path.basename(p)}`);
      }
    }
  };
  await walk(dir);
  return [...hits];
}

/** How this process was started, so it can run itself again (bin, dist, or tsx on the sources). */
function selfCommand(): string[] {
  return [process.execPath, ...process.execArgv, process.argv[1]];
}

function cliName(): string {
  return existsSync(path.resolve('bin/s3cryptfs.js')) ? 'node bin/s3cryptfs.js' : 's3cryptfs';
}

function mountAvailable(): boolean {
  const [cmd, ...rest] = selfCommand();
  const r = spawnSync(cmd, [...rest, 'mount', '--help'], { stdio: 'ignore', timeout: 30_000 });
  return r.status === 0;
}

function runSelf(argv: string[], env: Record<string, string>, rt: Runtime): Promise<number> {
  const [cmd, ...rest] = selfCommand();
  const child = spawn(cmd, [...rest, ...argv], { stdio: 'inherit', env: { ...process.env, ...env } });
  // Ctrl-C reaches the child through the terminal's process group; forward SIGTERM ourselves.
  const onAbort = () => child.kill('SIGINT');
  rt.signal.addEventListener('abort', onAbort, { once: true });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      rt.signal.removeEventListener('abort', onAbort);
      resolve(code ?? (signal ? ExitCode.INTERRUPTED : ExitCode.GENERIC));
    });
  });
}

function rel(p: string): string {
  const r = path.relative(process.cwd(), p);
  return r.startsWith('..') ? p : `./${r}`;
}

export type { EmbeddedS3 };
