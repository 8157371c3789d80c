/**
 * Gateway settings: command-line flags > environment variables > the gateway config file (JSON) >
 * defaults. Every scalar setting has all three spellings: flag `--max-object-size`, variable
 * `S3CRYPTFS_GATEWAY_MAX_OBJECT_SIZE`, file key `"max_object_size"` (or "max-object-size").
 * Lists (buckets, vhost suffixes) are comma-separated in flags and variables, arrays in the file.
 * Client credentials and the backend's credentials come from the file (several pairs), or one pair
 * each from the environment.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { hostPreferredCipher } from '../engine/cipher-choice.js';
import type { CipherName } from '../format/index.js';
import type { BucketSpec } from './buckets.js';
import type { ConditionalMode } from './gateway.js';
import type { ClientCredential } from './sigv4.js';

type Kind = 'string' | 'path' | 'boolean' | 'integer' | 'size' | 'seconds' | 'list';

export interface SettingSpec {
  kind: Kind;
  describe: string;
  default?: string | number | boolean;
  choices?: string[];
}

export const GATEWAY_SETTINGS = {
  listen: { kind: 'string', describe: 'HTTPS listener HOST:PORT (needs --tls-cert/--tls-key or --tls-self-signed)' },
  'http-listen': { kind: 'string', describe: 'Plain HTTP listener HOST:PORT (loopback only unless --http-allow-remote)' },
  'http-allow-remote': { kind: 'boolean', describe: 'Allow the plain HTTP listener on a non-loopback address', default: false },
  'admin-listen': { kind: 'string', describe: 'Admin listener HOST:PORT: /healthz, /readyz, /metrics, dashboard at /' },
  'tls-cert': { kind: 'path', describe: 'PEM certificate (chain) for the HTTPS listener' },
  'tls-key': { kind: 'path', describe: 'PEM private key for the HTTPS listener' },
  'tls-self-signed': { kind: 'boolean', describe: 'Generate a self-signed pair (written to --tls-cert/--tls-key when given and missing, so the fingerprint stays stable)', default: false },
  'tls-hosts': { kind: 'list', describe: 'Names and addresses the self-signed certificate is valid for', default: 'localhost,127.0.0.1,::1' },
  buckets: { kind: 'list', describe: 'Buckets served (allowed_buckets): NAME, or NAME=BACKEND_BUCKET[/PREFIX] to map onto another bucket or prefix' },
  'virtual-host': { kind: 'list', describe: 'Domain suffixes for virtual-host-style addressing (BUCKET.SUFFIX)' },
  location: { kind: 'string', describe: 'Region reported to clients (GetBucketLocation, x-amz-bucket-region)', default: 'us-east-1' },
  'signing-regions': { kind: 'list', describe: 'Regions accepted in client signatures [default: any]' },
  'access-key-id': { kind: 'string', describe: 'One client access key id (more in the config file "credentials")' },
  'secret-access-key': { kind: 'string', describe: 'Its secret (prefer the environment variable or the config file)' },
  'backend-access-key-id': { kind: 'string', describe: 'Backend access key id [default: the AWS SDK chain: AWS_ACCESS_KEY_ID, profiles...]' },
  'backend-secret-access-key': { kind: 'string', describe: 'Backend secret access key' },
  'conditional-writes': { kind: 'string', choices: ['auto', 'backend', 'gateway'], default: 'auto', describe: 'If-None-Match: * on PUT: forward to the backend, check-and-write under a per-key lock in the gateway, or probe the backend once (auto)' },
  'list-etags': { kind: 'string', choices: ['exact', 'fast'], default: 'exact', describe: 'Listing ETags: exact (same as HEAD; may HEAD objects written elsewhere) or fast (derived, no extra requests)' },
  'max-object-size': { kind: 'size', default: '5G', describe: 'Largest object or part body accepted' },
  'max-clock-skew': { kind: 'seconds', default: 900, describe: 'Allowed difference between a request\'s signature time and the gateway clock, seconds' },
  'header-timeout': { kind: 'seconds', default: 20, describe: 'Seconds a client has to send the request head' },
  'idle-timeout': { kind: 'seconds', default: 60, describe: 'Seconds a connection may be silent (no bytes either way) mid-request before it is closed' },
  'keepalive-timeout': { kind: 'seconds', default: 65, describe: 'Seconds an idle keep-alive connection is kept' },
  'max-connections': { kind: 'integer', default: 1024, describe: 'Open connections per listener' },
  'verify-before-send': { kind: 'size', default: '16M', describe: 'GET bodies up to this size are decrypted and verified completely before the response starts (an integrity failure is then a clean 500)' },
  'md5-buffer': { kind: 'size', default: '16M', describe: 'Uploads without Content-MD5 up to this size are buffered so their ETag is the MD5 of the content' },
  'conditional-forward-max': { kind: 'size', default: '64M', describe: 'Largest create-only PUT forwarded to the backend as one conditional PUT (larger ones use the gateway lock)' },
  'cache-size': { kind: 'size', default: '32M', describe: 'Decrypted chunk cache per bucket' },
  'upload-concurrency': { kind: 'integer', default: 2, describe: 'Backend parts in flight per upload' },
  'multipart-expiry': { kind: 'seconds', default: 7 * 86400, describe: 'Incomplete multipart uploads older than this many seconds are removed (checked hourly)' },
  'bucket-admin': { kind: 'boolean', default: true, describe: 'Let CreateBucket/DeleteBucket reach the backend (for buckets in --buckets only)' },
  'new-store-cipher': { kind: 'string', choices: ['chacha20-poly1305', 'aes-256-gcm'], default: hostPreferredCipher(), describe: 'Cipher of stores created by CreateBucket (default: aes-256-gcm where the CPU has AES instructions)' },
  'new-store-chunk-size': { kind: 'size', default: '64K', describe: 'Chunk size of stores created by CreateBucket' },
  'new-store-encrypt-names': { kind: 'boolean', default: false, describe: 'Whether stores created by CreateBucket encrypt names' },
} as const satisfies Record<string, SettingSpec>;

export type GatewaySettingName = keyof typeof GATEWAY_SETTINGS;

export const envName = (name: string) => `S3CRYPTFS_GATEWAY_${name.toUpperCase().replace(/-/g, '_')}`;
const fileName = (name: string) => name.replace(/-/g, '_');

export interface GatewayConfig {
  https?: { host: string; port: number };
  http?: { host: string; port: number };
  httpAllowRemote: boolean;
  admin?: { host: string; port: number };
  tlsCert?: string;
  tlsKey?: string;
  tlsSelfSigned: boolean;
  tlsHosts: string[];
  buckets: BucketSpec[];
  virtualHostSuffixes: string[];
  region: string;
  signingRegions: string[];
  credentials: ClientCredential[];
  backend: { endpoint?: string; region?: string; pathStyle?: boolean; accessKeyId?: string; secretAccessKey?: string; unsignedPayload?: boolean };
  keyFile?: string;
  passphraseFile?: string;
  conditionalWrites: ConditionalMode;
  listEtags: 'exact' | 'fast';
  maxObjectBytes: number;
  maxSkewMs: number;
  headersTimeoutMs: number;
  idleTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxConnections: number;
  verifyBeforeSendBytes: number;
  md5BufferBytes: number;
  conditionalForwardMaxBytes: number;
  cacheBytes: number;
  uploadConcurrency: number;
  multipartExpiryMs: number;
  bucketAdmin: boolean;
  newStore: { cipher: CipherName; chunkSize: number; names: 'plain' | 'aes-siv' };
  /** Where each setting came from (for --verbose). */
  sources: Record<string, 'flag' | 'env' | 'file' | 'default'>;
}

export class GatewayConfigError extends Error {
  override readonly name = 'GatewayConfigError';
}

export function parseSize(text: string | number): number {
  if (typeof text === 'number') return text;
  const m = /^\s*(\d+)\s*([kmgt]?)(i?b)?\s*$/i.exec(text);
  if (!m) return NaN;
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Number(m[1]) * mult;
}

function coerce(name: string, spec: SettingSpec, raw: unknown, where: string): string | number | boolean | string[] {
  const fail = (what: string): never => {
    throw new GatewayConfigError(`${where}: ${what}`);
  };
  switch (spec.kind) {
    case 'string':
    case 'path': {
      if (typeof raw !== 'string' || raw === '') return fail('expected a non-empty string');
      if ('choices' in spec && spec.choices && !spec.choices.includes(raw)) return fail(`expected one of ${spec.choices.join(', ')}`);
      return raw;
    }
    case 'boolean':
      if (typeof raw === 'boolean') return raw;
      if (typeof raw === 'string' && /^(1|true|yes|on)$/i.test(raw)) return true;
      if (typeof raw === 'string' && /^(0|false|no|off)$/i.test(raw)) return false;
      return fail('expected true or false');
    case 'integer':
    case 'seconds': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\d+(\.\d+)?$/.test(raw.trim()) ? Number(raw) : NaN;
      if (!Number.isFinite(n) || n < 0 || (spec.kind === 'integer' && !Number.isInteger(n))) return fail('expected a non-negative number');
      return n;
    }
    case 'size': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' ? parseSize(raw) : NaN;
      if (!Number.isSafeInteger(n) || n < 0) return fail('expected a size (e.g. 1048576, 64K, 16M, 5G)');
      return n;
    }
    case 'list': {
      if (Array.isArray(raw) && raw.every((x) => typeof x === 'string')) return raw as string[];
      if (typeof raw === 'string') return raw.split(',').map((s) => s.trim()).filter(Boolean);
      return fail('expected a list (comma-separated, or a JSON array of strings)');
    }
  }
  void name;
  return fail('unknown setting kind');
}

export interface ResolveGatewayInput {
  argv: Record<string, unknown>;
  env: NodeJS.ProcessEnv;
  /** Path of the gateway config file, if any. */
  file?: string;
  /** Backend defaults from the CLI's own settings (--endpoint, --region, --path-style). */
  backendDefaults?: { endpoint?: string; region?: string; pathStyle?: boolean };
}

const FILE_ONLY_KEYS = ['credentials', 'backend', 'key_file', 'passphrase_file'];

export async function resolveGatewayConfig(input: ResolveGatewayInput): Promise<GatewayConfig> {
  const { argv, env } = input;
  let file: Record<string, unknown> = {};
  if (input.file) {
    let text: string;
    try {
      text = await readFile(input.file, 'utf8');
    } catch (err) {
      throw new GatewayConfigError(`gateway config ${input.file}: ${(err as { code?: string }).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
    }
    try {
      file = JSON.parse(text) as Record<string, unknown>;
    } catch (err) {
      throw new GatewayConfigError(`gateway config ${input.file}: not valid JSON (${(err as Error).message})`);
    }
    if (typeof file !== 'object' || file === null || Array.isArray(file)) throw new GatewayConfigError(`gateway config ${input.file}: expected a JSON object`);
    const known = new Set([...Object.keys(GATEWAY_SETTINGS).map(fileName), ...Object.keys(GATEWAY_SETTINGS), ...FILE_ONLY_KEYS, 'allowed_buckets']);
    for (const k of Object.keys(file)) {
      if (!known.has(k)) throw new GatewayConfigError(`gateway config ${input.file}: unknown setting "${k}"`);
    }
    if (file.allowed_buckets !== undefined && file.buckets === undefined) file.buckets = file.allowed_buckets;
  }
  const baseDir = input.file ? path.dirname(input.file) : process.cwd();
  const sources: GatewayConfig['sources'] = {};
  const values: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(GATEWAY_SETTINGS) as [GatewaySettingName, SettingSpec][]) {
    const camel = name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    const flag = argv[name] ?? argv[camel];
    const envValue = env[envName(name)];
    const fileValue = file[fileName(name)] ?? file[name];
    let v: unknown;
    if (flag !== undefined) {
      v = coerce(name, spec, typeof flag === 'number' ? String(flag) : flag, `--${name}`);
      sources[name] = 'flag';
    } else if (envValue !== undefined && envValue !== '') {
      v = coerce(name, spec, envValue, envName(name));
      sources[name] = 'env';
    } else if (fileValue !== undefined) {
      v = coerce(name, spec, fileValue, `gateway config "${fileName(name)}"`);
      sources[name] = 'file';
    } else if (spec.default !== undefined) {
      v = coerce(name, spec, spec.default, 'default');
      sources[name] = 'default';
    }
    if (spec.kind === 'path' && typeof v === 'string' && sources[name] === 'file') v = path.resolve(baseDir, v);
    values[name] = v;
  }
  const get = <T>(name: GatewaySettingName) => values[name] as T;
  const hostPort = (name: GatewaySettingName) => {
    const v = get<string | undefined>(name);
    if (v === undefined) return undefined;
    const m = /^(?:\[([^\]]+)\]|([^:]*))?:?(\d+)$/.exec(v.trim());
    if (!m || Number(m[3]) > 65535) throw new GatewayConfigError(`--${name}: expected HOST:PORT, got "${v}"`);
    return { host: m[1] ?? (m[2] ? m[2] : '127.0.0.1'), port: Number(m[3]) };
  };

  // Buckets: NAME or NAME=BACKEND[/PREFIX]
  const buckets: BucketSpec[] = [];
  for (const entry of get<string[] | undefined>('buckets') ?? []) {
    const m = /^([a-z0-9][a-z0-9.\-_]{1,62})(?:=([a-z0-9][a-z0-9.\-_]{1,62})(?:\/(.*))?)?$/i.exec(entry);
    if (!m) throw new GatewayConfigError(`buckets: invalid entry "${entry}" (NAME or NAME=BACKEND_BUCKET[/PREFIX])`);
    if (buckets.some((b) => b.name === m[1])) throw new GatewayConfigError(`buckets: "${m[1]}" is listed twice`);
    buckets.push({ name: m[1], backendBucket: m[2] ?? m[1], prefix: m[3] ?? '' });
  }

  // Client credentials: the file's list, plus one pair from flags/environment.
  const credentials: ClientCredential[] = [];
  if (file.credentials !== undefined) {
    if (!Array.isArray(file.credentials)) throw new GatewayConfigError('gateway config "credentials": expected a list of {access_key_id, secret_access_key, buckets?}');
    for (const [i, c] of (file.credentials as Record<string, unknown>[]).entries()) {
      const id = c?.access_key_id;
      const secret = c?.secret_access_key;
      if (typeof id !== 'string' || !/^[A-Za-z0-9_.\-+=@]{3,128}$/.test(id) || typeof secret !== 'string' || secret.length < 8) {
        throw new GatewayConfigError(`gateway config "credentials"[${i}]: access_key_id (3-128 of A-Z a-z 0-9 _.-+=@) and secret_access_key (at least 8 characters) are required`);
      }
      const cb = c.buckets;
      if (cb !== undefined && (!Array.isArray(cb) || !cb.every((x) => typeof x === 'string'))) throw new GatewayConfigError(`gateway config "credentials"[${i}].buckets: expected a list of bucket names`);
      credentials.push({ accessKeyId: id, secretAccessKey: secret, buckets: cb as string[] | undefined });
    }
  }
  const oneId = get<string | undefined>('access-key-id');
  const oneSecret = get<string | undefined>('secret-access-key');
  if ((oneId === undefined) !== (oneSecret === undefined)) throw new GatewayConfigError('give both --access-key-id and --secret-access-key (or neither)');
  if (oneId !== undefined && oneSecret !== undefined) credentials.push({ accessKeyId: oneId, secretAccessKey: oneSecret });
  const ids = new Set<string>();
  for (const c of credentials) {
    if (ids.has(c.accessKeyId)) throw new GatewayConfigError(`client access key id ${c.accessKeyId} is configured twice`);
    ids.add(c.accessKeyId);
    for (const b of c.buckets ?? []) {
      if (!buckets.some((s) => s.name === b)) throw new GatewayConfigError(`credentials for ${c.accessKeyId} name bucket "${b}", which is not in buckets`);
    }
  }

  const backendFile = (file.backend ?? {}) as Record<string, unknown>;
  if (typeof backendFile !== 'object' || Array.isArray(backendFile)) throw new GatewayConfigError('gateway config "backend": expected an object');
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
  const backend: GatewayConfig['backend'] = {
    endpoint: input.backendDefaults?.endpoint ?? str(backendFile.endpoint),
    region: input.backendDefaults?.region ?? str(backendFile.region),
    pathStyle: input.backendDefaults?.pathStyle ?? (typeof backendFile.path_style === 'boolean' ? backendFile.path_style : undefined),
    accessKeyId: get<string | undefined>('backend-access-key-id') ?? str(backendFile.access_key_id),
    secretAccessKey: get<string | undefined>('backend-secret-access-key') ?? str(backendFile.secret_access_key),
    unsignedPayload: typeof backendFile.unsigned_payload === 'boolean' ? backendFile.unsigned_payload : undefined,
  };
  if (backendFile.unsigned_payload !== undefined && typeof backendFile.unsigned_payload !== 'boolean') {
    throw new GatewayConfigError('gateway config "backend.unsigned_payload": expected true or false');
  }
  if ((backend.accessKeyId === undefined) !== (backend.secretAccessKey === undefined)) {
    throw new GatewayConfigError('backend credentials need both an access key id and a secret access key');
  }
  const rel = (v: unknown) => (typeof v === 'string' && v !== '' ? path.resolve(baseDir, v) : undefined);

  return {
    https: hostPort('listen'),
    http: hostPort('http-listen'),
    httpAllowRemote: get<boolean>('http-allow-remote'),
    admin: hostPort('admin-listen'),
    tlsCert: get<string | undefined>('tls-cert'),
    tlsKey: get<string | undefined>('tls-key'),
    tlsSelfSigned: get<boolean>('tls-self-signed'),
    tlsHosts: get<string[]>('tls-hosts'),
    buckets,
    virtualHostSuffixes: get<string[] | undefined>('virtual-host') ?? [],
    region: get<string>('location'),
    signingRegions: get<string[] | undefined>('signing-regions') ?? [],
    credentials,
    backend,
    keyFile: rel(file.key_file),
    passphraseFile: rel(file.passphrase_file),
    conditionalWrites: get<ConditionalMode>('conditional-writes'),
    listEtags: get<'exact' | 'fast'>('list-etags'),
    maxObjectBytes: get<number>('max-object-size'),
    maxSkewMs: get<number>('max-clock-skew') * 1000,
    headersTimeoutMs: get<number>('header-timeout') * 1000,
    idleTimeoutMs: get<number>('idle-timeout') * 1000,
    keepAliveTimeoutMs: get<number>('keepalive-timeout') * 1000,
    maxConnections: get<number>('max-connections'),
    verifyBeforeSendBytes: get<number>('verify-before-send'),
    md5BufferBytes: get<number>('md5-buffer'),
    conditionalForwardMaxBytes: get<number>('conditional-forward-max'),
    cacheBytes: get<number>('cache-size'),
    uploadConcurrency: Math.max(1, get<number>('upload-concurrency')),
    multipartExpiryMs: get<number>('multipart-expiry') * 1000,
    bucketAdmin: get<boolean>('bucket-admin'),
    newStore: {
      cipher: get<CipherName>('new-store-cipher'),
      chunkSize: get<number>('new-store-chunk-size'),
      names: get<boolean>('new-store-encrypt-names') ? 'aes-siv' : 'plain',
    },
    sources,
  };
}
