// Shared setup for the binding tests (not a test itself): an EncryptedFileSystem over the in-memory
// store (bench/memory-store.ts), mounted in this process with a chosen binding. The mount is only
// ever touched from child processes (sh) or async fs calls: a synchronous call from this process
// would wait on the event loop that serves it.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { access, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { MemoryStore } from '../../../bench/memory-store.js';
import { loadBinding, type FsOperations, type MountHandle } from '../../../native-bindings/index.js';
import type { Fuse3MountOptions } from '../../../native-bindings/fuse3/index.js';
import { Engine } from '../../../src/engine/index.js';
import { deriveKeys, newBucketConfig } from '../../../src/format/index.js';
import { EncryptedFileSystem } from '../../../src/fs/filesystem.js';
import type { FsOptions } from '../../../src/fs/types.js';

export const MiB = 1024 * 1024;

interface Teardownable {
  teardown(fn: () => unknown): void;
}

export interface ShResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function sh(cmd: string, opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<ShResult> {
  return new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
    // Under test:native-asan the sanitizer runtime is preloaded into node: not into the commands.
    if (env.S3CRYPTFS_STRIP_PRELOAD) delete env.LD_PRELOAD;
    execFile('bash', ['-c', cmd], { maxBuffer: 256 * MiB, timeout: opts.timeoutMs ?? 300_000, env }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

export async function run(cmd: string, opts: { timeoutMs?: number } = {}): Promise<string> {
  const r = await sh(cmd, opts);
  if (r.code !== 0) throw new Error(`command failed (${r.code}): ${cmd}\n${r.stderr.slice(-4000)}\n${r.stdout.slice(-2000)}`);
  return r.stdout;
}

export const q = JSON.stringify;

/** Why FUSE tests cannot run here, or null. */
export async function fuseSkipReason(binding = 'fuse3'): Promise<string | null> {
  try {
    await access('/dev/fuse', fsc.R_OK | fsc.W_OK);
  } catch {
    return 'no /dev/fuse';
  }
  const b = await loadBinding(binding);
  return b.unavailableReason();
}

export async function memoryEngine(opts: { hashEtags?: boolean; chunkSize?: number } = {}): Promise<{ engine: Engine; store: MemoryStore }> {
  const store = new MemoryStore({ hashEtags: opts.hashEtags });
  const bucket = 'bench';
  store.createBucket(bucket);
  const keys = deriveKeys(randomBytes(32));
  const config = newBucketConfig(keys, { cipher: 'chacha20-poly1305', chunkSize: opts.chunkSize ?? 64 * 1024, names: 'aes-siv' });
  await Engine.init(store, bucket, '', config);
  const engine = await Engine.open({ store, bucket, prefix: '', keys, config });
  return { engine, store };
}

export interface Mounted {
  mnt: string;
  dir: string;
  fs: EncryptedFileSystem;
  engine: Engine;
  store: MemoryStore;
  handle: MountHandle;
  unmount(): Promise<void>;
}

/** Mounts an EncryptedFileSystem over a fresh memory store with `binding`. */
export async function mountMemory(
  t: Teardownable,
  opts: {
    binding?: string;
    fsOptions?: FsOptions;
    mountOptions?: Fuse3MountOptions;
    fsWrap?: (fs: FsOperations) => FsOperations;
    /** Fills the store through a filesystem of its own before the mount (which then starts with cold caches). */
    prepare?: (fs: EncryptedFileSystem, engine: Engine) => Promise<void>;
    /** Mount here instead of a fresh directory. */
    mountpoint?: string;
  } = {},
): Promise<Mounted> {
  const dir = await mkdtemp(path.join(tmpdir(), 's3cryptfs-native-'));
  const mnt = opts.mountpoint ?? path.join(dir, 'mnt');
  await mkdir(mnt, { recursive: true });
  const { engine, store } = await memoryEngine();
  if (opts.prepare) {
    const before = await EncryptedFileSystem.create(engine, { spoolDir: dir });
    await opts.prepare(before, engine);
    await before.close();
  }
  const fs = await EncryptedFileSystem.create(engine, { spoolDir: dir, ...opts.fsOptions });
  const binding = await loadBinding(opts.binding ?? 'fuse3');
  const handle = await binding.mount(mnt, opts.fsWrap ? opts.fsWrap(fs) : fs, { fsName: 'memory', ...opts.mountOptions });
  let done = false;
  const unmount = async () => {
    if (done) return;
    done = true;
    await fs.flushAll();
    await handle.unmount().catch(async () => {
      await handle.unmount({ lazy: true }).catch(() => {});
    });
    await fs.close();
  };
  t.teardown(async () => {
    await unmount();
    if (await isMounted(mnt)) await sh(`fusermount3 -u -z ${q(mnt)}`);
    await rm(dir, { recursive: true, force: true });
  });
  return { mnt, dir, fs, engine, store, handle, unmount };
}

export async function isMounted(mnt: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').some((l) => l.split(' ')[4] === mnt);
}

/** Wraps every method of `fs` (bound), replacing some: for stalling or counting calls in tests. */
export function wrapFs(fs: FsOperations, replace: Partial<Record<keyof FsOperations, unknown>>): FsOperations {
  const out: Record<string, unknown> = {};
  const proto = Object.getPrototypeOf(fs) as Record<string, unknown>;
  for (const name of Object.getOwnPropertyNames(proto)) {
    const v = (fs as unknown as Record<string, unknown>)[name];
    if (typeof v === 'function' && name !== 'constructor') out[name] = (v as (...a: unknown[]) => unknown).bind(fs);
  }
  // A replaced read() must see every read: the binding prefers readParts() when there is one.
  if ('read' in replace && !('readParts' in replace)) delete out.readParts;
  return { ...out, ...replace } as unknown as FsOperations;
}
