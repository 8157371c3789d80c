// Runs s3rver (a filesystem-backed S3 emulator) in a child process, so its
// request handling never competes with the caller's event loop. Used by the
// CLI's embedded demo backend and by the test harness.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import http from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';

import { S3RVER_CHILD_PROGRAM } from './s3rver-child.js';

export interface EmbeddedS3Options {
  /** Data directory; objects persist here across restarts. Created if missing. */
  dir: string;
  /** TCP port; 0 (the default) picks a free one. */
  port?: number;
  /** Interface to bind; defaults to loopback only. */
  address?: string;
  /** Buckets to create at startup (existing ones are kept). */
  buckets?: string[];
  /** How long to wait for the server to answer before giving up. */
  startTimeoutMs?: number;
}

export interface EmbeddedS3 {
  endpoint: string;
  port: number;
  dir: string;
  /** s3rver accepts exactly this key pair (and does not verify SigV4 signatures). */
  accessKeyId: 'S3RVER';
  secretAccessKey: 'S3RVER';
  pid: number;
  stop(): Promise<void>;
}

export const S3RVER_ACCESS_KEY_ID = 'S3RVER';
export const S3RVER_SECRET_ACCESS_KEY = 'S3RVER';

interface ChildConfig {
  s3rverModule: string;
  directory: string;
  address: string;
  port: number;
  buckets: string[];
}


const STDERR_TAIL_BYTES = 4096;

export async function startEmbeddedS3(options: EmbeddedS3Options): Promise<EmbeddedS3> {
  const address = options.address ?? '127.0.0.1';
  const dir = path.resolve(options.dir);
  await mkdir(dir, { recursive: true });

  const config: ChildConfig = {
    s3rverModule: createRequire(import.meta.url).resolve('s3rver'),
    directory: dir,
    address,
    port: options.port ?? 0,
    buckets: options.buckets ?? [],
  };
  // The child gets a clean NODE_OPTIONS so loaders meant for the parent (test
  // runners, coverage) stay out of it. s3rver encrypts its ListObjectsV2
  // continuation tokens with DES, which OpenSSL 3 only offers in its legacy provider.
  const { NODE_OPTIONS: _parentNodeOptions, ...env } = process.env;
  const child = spawn(process.execPath, ['--openssl-legacy-provider', '-e', S3RVER_CHILD_PROGRAM], {
    env: { ...env, S3CRYPTFS_S3RVER_CONFIG: JSON.stringify(config) },
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });

  let stderrTail = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderrTail = (stderrTail + chunk).slice(-STDERR_TAIL_BYTES);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const timeoutMs = options.startTimeoutMs ?? 15_000;
  try {
    const port = await waitForListening(child, timeoutMs, () => stderrTail);
    const host = address.includes(':') ? `[${address}]` : address;
    const endpoint = `http://${host}:${port}`;
    await waitUntilAnswering(endpoint, timeoutMs);
    return {
      endpoint,
      port,
      dir,
      accessKeyId: S3RVER_ACCESS_KEY_ID,
      secretAccessKey: S3RVER_SECRET_ACCESS_KEY,
      pid: child.pid ?? -1,
      stop: () => stopChild(child, exited),
    };
  } catch (err) {
    await stopChild(child, exited);
    throw err;
  }
}

function waitForListening(
  child: ChildProcess,
  timeoutMs: number,
  stderrTail: () => string,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`embedded S3 did not start within ${timeoutMs} ms: ${oneLine(stderrTail())}`));
    }, timeoutMs);
    const onMessage = (message: unknown) => {
      const m = message as { type?: string; port?: number };
      if (m?.type === 'listening' && typeof m.port === 'number') {
        cleanup();
        resolve(m.port);
      }
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      cleanup();
      const status = signal ?? `code ${code}`;
      reject(new Error(`embedded S3 exited during startup (${status}): ${oneLine(stderrTail())}`));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      child.off('error', onError);
    };
    child.on('message', onMessage);
    child.on('exit', onExit);
    child.on('error', onError);
  });
}

/** Polls until any HTTP response comes back; the port being bound is not proof enough. */
async function waitUntilAnswering(endpoint: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await answers(endpoint)) return;
    if (Date.now() > deadline) throw new Error(`embedded S3 at ${endpoint} is not answering`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function answers(endpoint: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(endpoint, { agent: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(true);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

async function stopChild(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const killTimer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(killTimer);
}

function oneLine(text: string): string {
  const trimmed = text.trim().split('\n').filter(Boolean);
  return trimmed.length ? trimmed.slice(-3).join(' | ') : '(no output)';
}
