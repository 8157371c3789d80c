/**
 * Master key held in memory by a local `s3cryptfs memkey-server` and fetched from its Unix socket:
 *
 *   --key-file memkey:/run/memkey/memkey.sock[?timeout=SECONDS]
 *
 * load() waits (printing one status line naming the fingerprint to deliver to) until an
 * administrator has delivered the key, up to the timeout (default 300 s, 0 = forever, also
 * S3CRYPTFS_MEMKEY_TIMEOUT). The raw key is only ever served on the local socket, so
 * `memkey://HOST/...` URLs are refused.
 */
import path from 'node:path';
import { DEFAULT_WAIT_TIMEOUT_MS, fetchKey, waitingLine } from '../memkey/client.js';
import { isMemkeyError } from '../memkey/errors.js';
import { KeyError } from './errors.js';
import type { KeyContext, KeySource } from './types.js';

export const MEMKEY_SCHEME = 'memkey:';
export const MEMKEY_TIMEOUT_ENV = 'S3CRYPTFS_MEMKEY_TIMEOUT';

export function isMemkeyUrl(value: string): boolean {
  return value.toLowerCase().startsWith(MEMKEY_SCHEME);
}

export interface ParsedMemkeyUrl {
  /** Absolute socket path; undefined for a remote (refused) URL. */
  socketPath?: string;
  /** Remote host of a memkey://HOST/ URL. */
  host?: string;
  timeoutMs?: number;
}

/** memkey:/abs/path, memkey:///abs/path or memkey:relative/path, optionally ?timeout=SECONDS. */
export function parseMemkeyUrl(url: string): ParsedMemkeyUrl {
  const rest = url.slice(MEMKEY_SCHEME.length);
  const q = rest.indexOf('?');
  let p = q >= 0 ? rest.slice(0, q) : rest;
  const query = new URLSearchParams(q >= 0 ? rest.slice(q + 1) : '');
  let timeoutMs: number | undefined;
  const t = query.get('timeout');
  if (t !== null) timeoutMs = parseTimeout(t, 'the timeout in the memkey: URL');
  if (p.startsWith('//')) {
    const slash = p.indexOf('/', 2);
    const authority = slash >= 0 ? p.slice(2, slash) : p.slice(2);
    if (authority !== '') return { host: authority.replace(/^.*@/, ''), timeoutMs };
    p = slash >= 0 ? p.slice(slash) : '';
  }
  if (p === '') throw new KeyError('SOURCE_UNAVAILABLE', 'memkey: URL without a socket path (e.g. memkey:/run/memkey/memkey.sock)');
  return { socketPath: path.resolve(p), timeoutMs };
}

function parseTimeout(text: string, what: string): number {
  if (!/^\d+(\.\d+)?$/.test(text.trim())) throw new KeyError('SOURCE_UNAVAILABLE', `${what} must be a number of seconds (0 = wait forever), got "${text}"`);
  return Math.round(Number(text) * 1000);
}

export interface MemkeySourceOptions {
  /** Where the waiting line goes [stderr, prefixed "s3cryptfs: "]. */
  onStatus?: (line: string) => void;
  /** Stops waiting; without one, SIGINT/SIGTERM stop the wait. */
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
}

export class MemkeySource implements KeySource {
  constructor(
    readonly url: string,
    private readonly opts: MemkeySourceOptions = {},
  ) {}

  describe(): string {
    try {
      const p = parseMemkeyUrl(this.url);
      return p.socketPath ? `memkey socket ${p.socketPath}` : `network key ${redact(this.url)}`;
    } catch {
      return `network key ${redact(this.url)}`;
    }
  }

  async load(_ctx: KeyContext): Promise<Uint8Array> {
    const parsed = parseMemkeyUrl(this.url);
    if (!parsed.socketPath) {
      throw new KeyError(
        'SOURCE_UNAVAILABLE',
        `${redact(this.url)}: memkey keys are served only on a local Unix socket, never over the network; run s3cryptfs memkey-server on this machine and use --key-file memkey:/run/memkey/memkey.sock`,
      );
    }
    const env = this.opts.env ?? process.env;
    const envTimeout = env[MEMKEY_TIMEOUT_ENV];
    const timeoutMs = parsed.timeoutMs ?? (envTimeout ? parseTimeout(envTimeout, MEMKEY_TIMEOUT_ENV) : DEFAULT_WAIT_TIMEOUT_MS);
    const say = this.opts.onStatus ?? ((line: string) => process.stderr.write(`s3cryptfs: ${line}\n`));

    let signal = this.opts.signal;
    let cleanup = () => {};
    if (!signal) {
      const ac = new AbortController();
      const onSignal = () => ac.abort(new KeyError('KEY_WAIT_INTERRUPTED', 'interrupted while waiting for the master key'));
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      cleanup = () => {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      };
      signal = ac.signal;
    }
    try {
      const got = await fetchKey(parsed.socketPath, { timeoutMs, signal, onWaiting: (info) => say(waitingLine(info, timeoutMs)) });
      return got.key;
    } catch (err) {
      if (isMemkeyError(err, 'UNREACHABLE')) throw new KeyError('KEY_SERVER_UNREACHABLE', err.message);
      if (isMemkeyError(err, 'TIMEOUT')) throw new KeyError('KEY_WAIT_TIMEOUT', err.message);
      throw err;
    } finally {
      cleanup();
    }
  }
}

/** URLs may carry tokens in the user-info or query; describe() shows neither. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    u.search = '';
    u.hash = '';
    return u.toString();
  } catch {
    return MEMKEY_SCHEME;
  }
}
