/**
 * Observability of a running mount: Prometheus metrics and the live dashboard on the shared admin
 * listener (src/admin), a control socket that `s3cryptfs status` asks what the daemon is doing
 * (uploads in flight with their progress, cache use, recent errors), and secret-free log lines.
 *
 * The mount command hooks it in with three calls: startMountOps() once the engine is open,
 * recordError() from the file system's error callback, close() at unmount.
 */
import { mkdir, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { MetricsRegistry } from '../admin/registry.js';
import { storeMetrics } from '../admin/store-metrics.js';
import { AdminServer } from '../admin/server.js';
import type { DashboardPanel } from '../admin/dashboard.js';
import type { Engine, ObjectWriter, WriteOptions } from '../engine/index.js';
import { IntegrityError } from '../format/errors.js';
import type { ObjectStore } from '../store/store.js';

export interface MountOpsOptions {
  engine: Engine;
  store: Pick<ObjectStore, 'stats'>;
  mountpoint: string;
  /** s3://bucket/prefix */
  source: string;
  /** Admin listener "HOST:PORT" (metrics, dashboard, probes); none when undefined. */
  adminListen?: string;
  /** Control socket path; default controlSocketPath(mountpoint); "" disables it. */
  controlSocket?: string;
  /** Decrypted-chunk cache capacity in bytes, for the status. */
  cacheCapacity?: number;
  /** Structured logger (pino); receives secret-free records only. */
  log?: { warn(obj: object, msg: string): void };
}

export interface UploadStatus {
  /** Plaintext path (the status is only served to the mount's owner, over a 0600 socket). */
  path: string;
  bytesWritten: number;
  startedAt: string;
  seconds: number;
  /** Plaintext bytes per second since it started. */
  rate: number;
}

export interface MountStatus {
  pid: number;
  source: string;
  mountpoint: string;
  names: 'plain' | 'aes-siv';
  startedAt: string;
  uptimeSeconds: number;
  uploads: UploadStatus[];
  uploadPartsInFlight: number;
  cache: { bytes: number; capacity?: number; hits: number; misses: number };
  transfer: { bytesRead: number; bytesWritten: number; bytesFetched: number; bytesUploaded: number; requests: number; retries: number };
  errors: { total: number; integrity: number; recent: { at: string; op: string; key: string; code: string; message: string }[] };
  admin?: string;
}

const RECENT_ERRORS = 20;

export const MOUNT_PANELS: DashboardPanel[] = [
  { title: 'Read (plaintext)', metric: 's3cryptfs_mount_read_bytes_total', kind: 'bytes-rate' },
  { title: 'Written (plaintext)', metric: 's3cryptfs_mount_written_bytes_total', kind: 'bytes-rate' },
  { title: 'Fetched from S3', metric: 's3cryptfs_mount_fetched_bytes_total', kind: 'bytes-rate' },
  { title: 'Uploaded to S3', metric: 's3cryptfs_mount_uploaded_bytes_total', kind: 'bytes-rate' },
  { title: 'Uploads in flight', metric: 's3cryptfs_mount_uploads_in_flight', kind: 'gauge' },
  { title: 'Upload parts in flight', metric: 's3cryptfs_mount_upload_parts_in_flight', kind: 'gauge' },
  { title: 'Chunk cache', metric: 's3cryptfs_mount_cache_bytes', kind: 'bytes' },
  { title: 'Cache hits', metric: 's3cryptfs_mount_cache_hits_total', kind: 'rate' },
  { title: 'Cache misses', metric: 's3cryptfs_mount_cache_misses_total', kind: 'rate' },
  { title: 'S3 requests', metric: 's3cryptfs_mount_store_requests_total', kind: 'rate', by: 'operation' },
  { title: 'S3 retries', metric: 's3cryptfs_mount_store_retries_total', kind: 'rate' },
  { title: 'Errors', metric: 's3cryptfs_mount_errors_total', kind: 'rate', by: 'op' },
  { title: 'Integrity failures', metric: 's3cryptfs_mount_integrity_failures_total', kind: 'gauge' },
];

/** Default control socket of a mount point: $XDG_RUNTIME_DIR/s3cryptfs/<escaped path>.sock (else /tmp/s3cryptfs-UID/). */
export function controlSocketPath(mountpoint: string, env: NodeJS.ProcessEnv = process.env): string {
  return path.join(controlSocketDir(env), escapeMountpoint(path.resolve(mountpoint)) + '.sock');
}

export function controlSocketDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.XDG_RUNTIME_DIR ? path.join(env.XDG_RUNTIME_DIR, 's3cryptfs') : path.join(os.tmpdir(), `s3cryptfs-${process.getuid?.() ?? 0}`);
}

/** "/srv/my vault" -> "srv-my\x20vault" (like systemd-escape -p). */
export function escapeMountpoint(p: string): string {
  const trimmed = p.replace(/^\/+|\/+$/g, '') || '-';
  return trimmed.replace(/[^A-Za-z0-9:_./]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`).replace(/\//g, '-');
}

export class MountOps {
  readonly metrics = new MetricsRegistry();
  private admin?: AdminServer;
  private control?: http.Server;
  private controlPath?: string;
  private adminUrl?: string;
  private readonly started = new Date();
  private readonly writers = new Map<ObjectWriter, { path: string; started: number }>();
  private readonly recent: MountStatus['errors']['recent'] = [];
  private errorCount = 0;
  private integrityCount = 0;
  private readonly errorsByOp: Map<string, number> = new Map();
  private readonly names: 'plain' | 'aes-siv';

  private constructor(private readonly opts: MountOpsOptions) {
    this.names = opts.engine.config.names;
    this.trackWriters();
    this.defineMetrics();
  }

  static async start(opts: MountOpsOptions): Promise<MountOps> {
    const ops = new MountOps(opts);
    try {
      if (opts.adminListen) await ops.startAdmin(opts.adminListen);
      if (opts.controlSocket !== '') await ops.startControl(opts.controlSocket ?? controlSocketPath(opts.mountpoint));
    } catch (err) {
      await ops.close();
      throw err;
    }
    return ops;
  }

  /** The admin listener's URL (http://host:port), when it runs. */
  get adminAddress(): string | undefined {
    return this.adminUrl;
  }

  get controlSocketPath(): string | undefined {
    return this.controlPath;
  }

  /**
   * Names a path for a log line or the status: the path itself for a plain-name store, its S3 key
   * (ciphertext) for a store with encrypted names.
   */
  logPath(p: string): string {
    const bare = p.replace(/^\/+/, '');
    if (this.names === 'plain') return '/' + bare;
    try {
      return `s3:${this.opts.engine.objectKey(bare)}`;
    } catch {
      return '(unnamed)';
    }
  }

  /** A log-safe message: the plaintext path replaced by logPath() when names are encrypted. */
  logMessage(p: string, message: string): string {
    if (this.names === 'plain' || p === '') return message;
    // The kernel's "/a/b" and the engine's "a/b" spelling, longest first.
    const bare = p.replace(/^\/+/, '');
    let out = message.split(p).join(this.logPath(p));
    if (bare !== '' && bare !== p) out = out.split(bare).join(this.logPath(p));
    return out;
  }

  /** From the file system's error callback. */
  recordError(op: string, p: string, err: unknown): void {
    this.errorCount++;
    this.errorsByOp.set(op, (this.errorsByOp.get(op) ?? 0) + 1);
    if (err instanceof IntegrityError) this.integrityCount++;
    const code = String((err as { code?: unknown })?.code ?? (err as Error)?.name ?? 'Error');
    const message = this.logMessage(p, err instanceof Error ? err.message : String(err));
    const key = this.logPath(p);
    this.recent.push({ at: new Date().toISOString(), op, key, code, message });
    if (this.recent.length > RECENT_ERRORS) this.recent.shift();
    this.opts.log?.warn({ op, key, code }, message);
  }

  status(): MountStatus {
    const s = this.opts.engine.stats;
    const st = this.opts.store.stats;
    const now = Date.now();
    return {
      pid: process.pid,
      source: this.opts.source,
      mountpoint: this.opts.mountpoint,
      names: this.names,
      startedAt: this.started.toISOString(),
      uptimeSeconds: Math.round((now - this.started.getTime()) / 1000),
      uploads: [...this.writers].map(([w, info]) => {
        const seconds = Math.max(0.001, (now - info.started) / 1000);
        return { path: info.path, bytesWritten: w.bytesWritten, startedAt: new Date(info.started).toISOString(), seconds: Math.round(seconds), rate: Math.round(w.bytesWritten / seconds) };
      }),
      uploadPartsInFlight: s.uploadsInFlight,
      cache: { bytes: s.cacheBytes, capacity: this.opts.cacheCapacity, hits: s.cacheHits, misses: s.cacheMisses },
      transfer: {
        bytesRead: s.bytesDecrypted, bytesWritten: s.bytesEncrypted, bytesFetched: s.bytesFetched, bytesUploaded: s.bytesUploaded,
        requests: Object.values(st.requests).reduce((a, b) => a + b, 0), retries: st.retries,
      },
      errors: { total: this.errorCount, integrity: this.integrityCount, recent: [...this.recent] },
      admin: this.adminUrl,
    };
  }

  async close(): Promise<void> {
    await this.admin?.close();
    if (this.control) {
      const server = this.control;
      await new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
    }
    if (this.controlPath) await rm(this.controlPath, { force: true });
  }

  // ---- internals ------------------------------------------------------------------------------------

  /** Wraps the engine's createWriter to follow files being uploaded (path, bytes so far). */
  private trackWriters(): void {
    const engine = this.opts.engine;
    const original = engine.createWriter.bind(engine);
    const writers = this.writers;
    engine.createWriter = (p: string, wopts?: WriteOptions): ObjectWriter => {
      const w = original(p, wopts);
      writers.set(w, { path: p, started: Date.now() });
      const done = () => writers.delete(w);
      const close = w.close.bind(w);
      const abort = w.abort.bind(w);
      w.close = () => close().finally(done);
      w.abort = () => abort().finally(done);
      return w;
    };
  }

  private defineMetrics(): void {
    const m = this.metrics;
    const s = () => this.opts.engine.stats;
    const st = () => this.opts.store.stats;
    // Counters mirror monotonic totals kept elsewhere: each scrape adds what changed since the last.
    const mirror = (name: string, help: string, read: () => number) => {
      let last = 0;
      m.counter(`mount_${name}`, help, [], function () {
        const now = read();
        if (now > last) this.inc(now - last);
        last = Math.max(last, now);
      });
    };
    mirror('read_bytes_total', 'Plaintext bytes decrypted for readers', () => s().bytesDecrypted);
    mirror('written_bytes_total', 'Plaintext bytes encrypted by writers', () => s().bytesEncrypted);
    mirror('fetched_bytes_total', 'Ciphertext bytes fetched from the store', () => s().bytesFetched);
    mirror('uploaded_bytes_total', 'Ciphertext bytes handed to the store', () => s().bytesUploaded);
    mirror('cache_hits_total', 'Chunk reads served from the decrypted-chunk cache', () => s().cacheHits);
    mirror('cache_misses_total', 'Chunk reads that needed a fetch', () => s().cacheMisses);
    mirror('parts_uploaded_total', 'Multipart parts uploaded', () => s().partsUploaded);
    mirror('uploads_total', 'Objects stored (single PUT or multipart)', () => s().singlePutUploads + s().multipartUploads);
    mirror('uploads_aborted_total', 'Uploads aborted after a failure', () => s().uploadsAborted);
    mirror('integrity_failures_total', 'Ciphertexts that failed authentication', () => this.integrityCount);
    mirror('store_retries_total', 'S3 requests retried', () => st().retries);
    const lastReq = new Map<string, number>();
    m.counter('mount_store_requests_total', 'S3 requests by operation, retries included', ['operation'], function () {
      for (const [op, n] of Object.entries(st().requests)) {
        const prev = lastReq.get(op) ?? 0;
        if (n > prev) this.inc({ operation: op }, n - prev);
        lastReq.set(op, Math.max(prev, n));
      }
    });
    storeMetrics(m, st);
    const lastErr = new Map<string, number>();
    const errorsByOp = this.errorsByOp;
    m.counter('mount_errors_total', 'File system operations that failed with an error other than ENOENT-like answers', ['op'], function () {
      for (const [op, n] of errorsByOp) {
        const prev = lastErr.get(op) ?? 0;
        if (n > prev) this.inc({ op }, n - prev);
        lastErr.set(op, n);
      }
    });
    const writers = this.writers;
    m.gauge('mount_uploads_in_flight', 'Files being uploaded', [], function () {
      this.set(writers.size);
    });
    m.gauge('mount_upload_parts_in_flight', 'Multipart parts being uploaded', [], function () {
      this.set(s().uploadsInFlight);
    });
    m.gauge('mount_cache_bytes', 'Decrypted-chunk cache occupancy in bytes', [], function () {
      this.set(s().cacheBytes);
    });
  }

  private async startAdmin(listen: string): Promise<void> {
    const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(listen);
    if (!m) throw new RangeError(`admin address must be HOST:PORT, got "${listen}"`);
    const host = m[1] ?? m[2];
    this.admin = new AdminServer({
      metrics: this.metrics,
      title: `s3cryptfs mount ${this.opts.mountpoint}`,
      panels: MOUNT_PANELS,
      readiness: [{ name: 'integrity', check: () => ({ ok: this.integrityCount === 0, detail: `${this.integrityCount} integrity failure(s)` }) }],
      info: () => ({ source: this.opts.source, mountpoint: this.opts.mountpoint, pid: String(process.pid), uploads: String(this.writers.size) }),
    });
    const addr = await this.admin.listen(Number(m[3]), host);
    this.adminUrl = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
  }

  private async startControl(socketPath: string): Promise<void> {
    await mkdir(path.dirname(socketPath), { recursive: true, mode: 0o700 });
    await rm(socketPath, { force: true }); // a stale socket of a crashed daemon
    const server = http.createServer((req, res) => {
      if (req.method === 'GET' && (req.url === '/status' || req.url === '/')) {
        const body = JSON.stringify(this.status());
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
        return;
      }
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
    });
    const oldUmask = process.umask(0o077); // the socket is created 0600
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(socketPath, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(oldUmask);
    }
    this.control = server;
    this.controlPath = socketPath;
  }
}

export function startMountOps(opts: MountOpsOptions): Promise<MountOps> {
  return MountOps.start(opts);
}

/** Client side of the control socket (`s3cryptfs status`). */
export function fetchStatus(socketPath: string, timeoutMs = 5000): Promise<MountStatus> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path: '/status', timeout: timeoutMs }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (b: Buffer) => parts.push(b));
      res.on('end', () => {
        try {
          if (res.statusCode !== 200) throw new Error(`control socket answered ${res.statusCode}`);
          resolve(JSON.parse(Buffer.concat(parts).toString('utf8')) as MountStatus);
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('control socket did not answer')));
    req.on('error', reject);
  });
}
