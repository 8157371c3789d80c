/**
 * Assembles a running gateway from a GatewayConfig: backend store, bucket registry, key loading
 * (retried until it works: /readyz says 503 meanwhile), listeners, admin listener, upload expiry.
 * Used by `s3cryptfs serve-s3` and by the tests.
 */
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { AdminServer } from '../admin/server.js';
import { MetricsRegistry } from '../admin/registry.js';
import { storeMetrics } from '../admin/store-metrics.js';
import type { AwsCseOptions } from '../engine/aws-cse/index.js';
import type { DerivedKeys } from '../format/kdf.js';
import type { KeySource } from '../keys/index.js';
import { ObjectStore } from '../store/store.js';
import { BucketRegistry } from './buckets.js';
import { GatewayConfigError, type GatewayConfig } from './config.js';
import { Gateway, type GatewayOptions } from './gateway.js';
import { gatewayMetrics, gatewayPanels } from './metrics.js';
import { isLoopback, listen, type RunningListener } from './server.js';
import { certificateFingerprint, checkPair, generateSelfSigned, type TlsPair } from './tls.js';

export interface ServiceLog {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export interface RunningGateway {
  gateway: Gateway;
  registry: BucketRegistry;
  store: ObjectStore;
  metrics: MetricsRegistry;
  https?: RunningListener;
  http?: RunningListener;
  admin?: { url: string; server: AdminServer };
  /** SHA-256 fingerprint of the HTTPS certificate. */
  fingerprint?: string;
  tls?: TlsPair;
  close(): Promise<void>;
}

export interface StartOptions {
  keySource: KeySource;
  /** Further keys objects may be sealed with (key rotation: the old key). */
  readKeys?: DerivedKeys[];
  /** AWS S3 Encryption Client keys and write format (--aws-cse-*, --format; docs/aws-cse.md). */
  awsCse?: AwsCseOptions;
  /** Use this store instead of building one from config.backend. */
  store?: ObjectStore;
  log?: ServiceLog;
  /** Gateway options not in the config (tests). */
  overrides?: Partial<GatewayOptions>;
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

/** Loads, or generates (and saves, when paths are given), the HTTPS certificate and key. */
export async function loadTls(config: GatewayConfig): Promise<TlsPair | undefined> {
  if (!config.https) return undefined;
  const { tlsCert, tlsKey } = config;
  if ((tlsCert === undefined) !== (tlsKey === undefined)) throw new GatewayConfigError('--tls-cert and --tls-key go together');
  if (tlsCert && tlsKey && (await exists(tlsCert)) && (await exists(tlsKey))) {
    const pair = { cert: await readFile(tlsCert, 'utf8'), key: await readFile(tlsKey, 'utf8') };
    try {
      checkPair(pair);
    } catch (err) {
      throw new GatewayConfigError(`TLS pair ${tlsCert} / ${tlsKey}: ${(err as Error).message}`);
    }
    return pair;
  }
  if (!config.tlsSelfSigned) {
    throw new GatewayConfigError(tlsCert ? `TLS files ${tlsCert} / ${tlsKey} not found (add --tls-self-signed to generate them)` : 'the HTTPS listener needs --tls-cert and --tls-key, or --tls-self-signed');
  }
  const pair = generateSelfSigned(config.tlsHosts);
  if (tlsCert && tlsKey) {
    await mkdir(path.dirname(tlsKey), { recursive: true });
    await writeFile(tlsKey, pair.key, { mode: 0o600, flag: 'wx' });
    await writeFile(tlsCert, pair.cert, { mode: 0o644, flag: 'wx' });
  }
  return pair;
}

export async function startGateway(config: GatewayConfig, opts: StartOptions): Promise<RunningGateway> {
  if (config.buckets.length === 0) throw new GatewayConfigError('no buckets to serve: give --buckets (allowed_buckets)');
  if (config.credentials.length === 0) throw new GatewayConfigError('no client credentials: give --access-key-id/--secret-access-key or "credentials" in the gateway config');
  if (!config.https && !config.http) throw new GatewayConfigError('no listener: give --listen (HTTPS) and/or --http-listen');
  if (config.http && !isLoopback(config.http.host) && !config.httpAllowRemote) {
    throw new GatewayConfigError(`plain HTTP on ${config.http.host} would expose credentials and data: use --listen (HTTPS), a loopback address, or --http-allow-remote`);
  }
  const log = opts.log;
  const tls = await loadTls(config);
  const store = opts.store ?? new ObjectStore({
    endpoint: config.backend.endpoint,
    region: config.backend.region,
    forcePathStyle: config.backend.pathStyle,
    credentials: config.backend.accessKeyId && config.backend.secretAccessKey
      ? { accessKeyId: config.backend.accessKeyId, secretAccessKey: config.backend.secretAccessKey }
      : undefined,
    unsignedPayload: config.backend.unsignedPayload,
  });
  const metricsRegistry = new MetricsRegistry();
  const metrics = gatewayMetrics(metricsRegistry);
  storeMetrics(metricsRegistry, () => store.stats);
  const registry = new BucketRegistry(store, config.buckets, opts.keySource, {
    cacheBytes: config.cacheBytes,
    uploadConcurrency: config.uploadConcurrency,
    readKeys: opts.readKeys,
    awsCse: opts.awsCse,
  }, (message) => log?.debug({ warning: message }, 'listing skipped an entry'));
  const gateway = new Gateway({
    registry,
    credentials: config.credentials,
    virtualHostSuffixes: config.virtualHostSuffixes,
    region: config.region,
    regions: config.signingRegions,
    maxSkewMs: config.maxSkewMs,
    maxObjectBytes: config.maxObjectBytes,
    conditionalWrites: config.conditionalWrites,
    conditionalForwardMaxBytes: config.conditionalForwardMaxBytes,
    md5BufferMaxBytes: config.md5BufferBytes,
    verifyBeforeSendBytes: config.verifyBeforeSendBytes,
    listEtags: config.listEtags,
    bucketAdmin: config.bucketAdmin,
    storeDefaults: config.newStore,
    metrics,
    log,
    ...opts.overrides,
  });

  // The key: tried now and retried every 5 s until it loads (a network key source may come later).
  let stopped = false;
  let keyTimer: NodeJS.Timeout | undefined;
  const tryKey = async () => {
    try {
      await registry.loadKey();
      if (registry.keyLoaded) log?.info({}, 'key loaded');
    } catch (err) {
      log?.warn({ err: err instanceof Error ? err.message : String(err) }, 'key not loaded yet; retrying');
    }
    if (!registry.keyLoaded && !stopped) keyTimer = setTimeout(() => void tryKey(), 5_000);
  };
  await tryKey();

  const timeouts = {
    headersTimeoutMs: config.headersTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
    keepAliveTimeoutMs: config.keepAliveTimeoutMs,
    maxConnections: config.maxConnections,
  };
  const running: RunningGateway = {
    gateway, registry, store, metrics: metricsRegistry, tls,
    fingerprint: tls ? certificateFingerprint(tls.cert) : undefined,
    close: async () => undefined,
  };
  const closers: (() => Promise<void>)[] = [];
  try {
    if (config.https) {
      running.https = await listen(gateway, { ...config.https, tls }, timeouts);
      closers.push(() => running.https!.close());
    }
    if (config.http) {
      running.http = await listen(gateway, config.http, timeouts);
      closers.push(() => running.http!.close());
    }
    if (config.admin) {
      const admin = new AdminServer({
        metrics: metricsRegistry,
        title: 's3cryptfs S3 gateway',
        panels: gatewayPanels(metricsRegistry.prefix),
        readiness: [{ name: 'key', check: () => ({ ok: registry.keyLoaded, detail: registry.keyLoaded ? undefined : registry.keyError ?? 'waiting for the key' }) }],
        info: () => ({
          buckets: config.buckets.map((b) => b.name).join(', '),
          ...(running.https ? { https: running.https.url } : {}),
          ...(running.http ? { http: running.http.url } : {}),
          ...(running.fingerprint ? { fingerprint: running.fingerprint } : {}),
          'in flight': String(gateway.inFlight),
        }),
      });
      const addr = await admin.listen(config.admin.port, config.admin.host);
      const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
      running.admin = { url: `http://${host}:${addr.port}`, server: admin };
      closers.push(() => admin.close());
    }
  } catch (err) {
    for (const c of closers.reverse()) await c().catch(() => {});
    if (!opts.store) store.destroy();
    throw err;
  }

  // Incomplete multipart uploads expire.
  const expire = async () => {
    for (const name of registry.names()) {
      try {
        const b = await registry.open(name);
        const n = await gateway.multipart.expire(b, config.multipartExpiryMs);
        if (n > 0) log?.info({ bucket: name, uploads: n }, 'expired incomplete multipart uploads');
      } catch {
        // bucket not there yet, or the backend is away: next time
      }
    }
  };
  const expiryTimer = setInterval(() => void expire(), 3600_000);
  expiryTimer.unref();

  running.close = async () => {
    stopped = true;
    if (keyTimer) clearTimeout(keyTimer);
    clearInterval(expiryTimer);
    for (const c of closers.reverse()) await c().catch(() => {});
    if (!opts.store) store.destroy();
  };
  return running;
}
