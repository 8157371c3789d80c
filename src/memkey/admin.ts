/**
 * Administrator side of the memkey protocol: ask for a challenge, verify it against the pinned
 * fingerprint, seal the master key for it, deliver, and check the server's proof of acceptance.
 */
import http from 'node:http';
import https from 'node:https';
import { MemkeyError, type MemkeyErrorCode } from './errors.js';
import {
  defaultRandom,
  DEFAULT_CHALLENGE_WINDOW_MS,
  keyCheckOf,
  normalizeFingerprint,
  parseChallenge,
  sealKey,
  STATUS_NONCE_SIZE,
  b64u,
  verifyAccepted,
  verifyChallenge,
  verifyStatus,
  type Challenge,
  type DeliveryMessage,
  type ServerStatus,
} from './protocol.js';

export interface AdminTarget {
  /** Admin protocol URL of the server, e.g. https://server:7431 */
  url: string;
  /** Pinned identity fingerprint (64 hex digits). */
  fingerprint: string;
  /** Extra CA certificate(s) (PEM) to trust for an https:// URL with a private certificate. */
  ca?: string | Buffer;
  /** Allowed distance between the challenge timestamp and this machine's clock [120 s]. */
  windowMs?: number;
  /** Per-request timeout [15 s]. */
  timeoutMs?: number;
}

export interface DeliveryResult {
  keyId: string;
  alreadyHeld: boolean;
  fingerprint: string;
}

const KNOWN_CODES = new Set<MemkeyErrorCode>([
  'BAD_MESSAGE', 'CHALLENGE_UNKNOWN', 'CHALLENGE_EXPIRED', 'DECRYPT_FAILED', 'KEY_MISMATCH', 'KEY_ALREADY_HELD', 'LOCKED',
]);

/** One admin session: keeps the HTTP connection alive across requests. close() when done. */
export class AdminClient {
  readonly url: URL;
  readonly fingerprint: string;
  private readonly agent: http.Agent;

  constructor(readonly target: AdminTarget) {
    try {
      this.url = new URL(target.url);
    } catch {
      throw new MemkeyError('CONFIG', `not a URL: "${target.url}" (expected http://HOST:PORT or https://HOST:PORT)`);
    }
    if (this.url.protocol !== 'http:' && this.url.protocol !== 'https:') {
      throw new MemkeyError('CONFIG', `the server URL must be http:// or https://, got "${target.url}"`);
    }
    this.fingerprint = normalizeFingerprint(target.fingerprint);
    this.agent = this.url.protocol === 'https:'
      ? new https.Agent({ keepAlive: true, maxSockets: 1, ca: target.ca })
      : new http.Agent({ keepAlive: true, maxSockets: 1 });
  }

  /** Steps 1-2: a challenge verified against the pinned fingerprint and the timestamp window. */
  async challenge(): Promise<Challenge> {
    const c = parseChallenge(await this.post('/v1/challenge', {}));
    verifyChallenge(c, this.fingerprint, Date.now(), this.target.windowMs ?? DEFAULT_CHALLENGE_WINDOW_MS);
    return c;
  }

  /**
   * Steps 1-4. Unless `skipKeyCheck`, refuses (without sending) a key whose key id the server does
   * not accept, so that a mistake does not count toward the server's lockout.
   */
  async deliver(masterKey: Uint8Array, opts: { skipKeyCheck?: boolean } = {}): Promise<DeliveryResult> {
    const c = await this.challenge();
    const keyId = keyCheckOf(masterKey);
    if (!opts.skipKeyCheck && !c.keyIds.includes(keyId)) {
      throw new MemkeyError('KEY_MISMATCH', `this key has key id ${keyId}, but the server accepts only ${c.keyIds.join(' or ')} (wrong key file for this bucket?); nothing was sent`);
    }
    const { message, confirmKey } = sealKey(c, masterKey, defaultRandom);
    try {
      const accepted = verifyAccepted(await this.post('/v1/deliver', message), confirmKey, keyId);
      return { keyId, alreadyHeld: accepted.alreadyHeld, fingerprint: this.fingerprint };
    } finally {
      confirmKey.fill(0);
    }
  }

  /** Sends a prepared delivery as is (tests: replays). */
  async sendDelivery(message: DeliveryMessage): Promise<unknown> {
    return this.post('/v1/deliver', message);
  }

  /** The server's state, signed over a fresh nonce by the pinned identity. */
  async status(): Promise<ServerStatus> {
    const nonce = defaultRandom(STATUS_NONCE_SIZE);
    return verifyStatus(await this.post('/v1/status', { v: 1, nonce: b64u(nonce) }), this.fingerprint, nonce);
  }

  close(): void {
    this.agent.destroy();
  }

  /** POSTs JSON; resolves with the parsed 200 body, rejects with a MemkeyError otherwise. */
  post(route: string, body: unknown): Promise<unknown> {
    const text = JSON.stringify(body);
    const url = new URL(route, this.url);
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(
        url,
        {
          method: 'POST',
          agent: this.agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) },
          timeout: this.target.timeoutMs ?? 15_000,
        },
        (res) => {
          const parts: Buffer[] = [];
          res.on('data', (c: Buffer) => parts.push(c));
          res.on('error', (err) => reject(this.unreachable(err)));
          res.on('end', () => {
            let parsed: unknown;
            try {
              parsed = JSON.parse(Buffer.concat(parts).toString('utf8'));
            } catch {
              return reject(new MemkeyError('PROTOCOL', `${this.url.origin} answered HTTP ${res.statusCode} without a memkey message (is this a memkey endpoint?)`));
            }
            if (res.statusCode === 200) return resolve(parsed);
            const e = (parsed as { error?: { code?: unknown; message?: unknown; retryAfterMs?: unknown } }).error;
            const code = typeof e?.code === 'string' && KNOWN_CODES.has(e.code as MemkeyErrorCode) ? (e.code as MemkeyErrorCode) : 'PROTOCOL';
            const msg = typeof e?.message === 'string' ? e.message.slice(0, 500) : `HTTP ${res.statusCode}`;
            reject(new MemkeyError(code, `the key server refused: ${msg}`, typeof e?.retryAfterMs === 'number' ? e.retryAfterMs : undefined));
          });
        },
      );
      req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
      req.on('error', (err) => reject(this.unreachable(err)));
      req.end(text);
    });
  }

  private unreachable(err: Error): MemkeyError {
    const code = (err as NodeJS.ErrnoException).code;
    if (code && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code)) {
      return new MemkeyError('UNREACHABLE', `unreachable key server ${this.url.origin}: its TLS certificate is not trusted (${code}); pass its CA certificate with --ca FILE`);
    }
    return new MemkeyError('UNREACHABLE', `unreachable key server ${this.url.origin}: ${code ?? err.message}`);
  }
}

/** One delivery in one call (opens and closes its own connection). */
export async function deliverKey(target: AdminTarget, masterKey: Uint8Array, opts: { skipKeyCheck?: boolean } = {}): Promise<DeliveryResult> {
  const client = new AdminClient(target);
  try {
    return await client.deliver(masterKey, opts);
  } finally {
    client.close();
  }
}

export async function fetchStatus(target: AdminTarget): Promise<ServerStatus> {
  const client = new AdminClient(target);
  try {
    return await client.status();
  } finally {
    client.close();
  }
}
