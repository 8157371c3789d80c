/**
 * The memkey server's state machine, independent of any transport: issues challenges, takes
 * deliveries (single-use challenges, key-check, lockout), holds the key in memory and tells
 * whoever waits for it. http.ts and socket.ts put it on the network; embedded.ts and server.ts
 * assemble them.
 */
import { MemkeyError } from './errors.js';
import {
  acceptedMessage,
  defaultRandom,
  equalBytes,
  issueChallenge,
  keyCheckOf,
  normalizeKeyId,
  openDelivery,
  parseDelivery,
  parseStatusRequest,
  signStatus,
  type AcceptedMessage,
  type ChallengeMessage,
  type RandomBytes,
  type ServerIdentity,
  type ServerStatus,
  type StatusMessage,
} from './protocol.js';
import { ChallengeBook, Lockout, type Clock } from './state.js';

export const DEFAULT_CHALLENGE_TTL_MS = 60_000;
export const DEFAULT_MAX_FAILURES = 5;
export const DEFAULT_LOCKOUT_MS = 300_000;

export type MemkeyLogLevel = 'info' | 'warn';
/** Receives one line per event. Lines never contain key material. */
export type MemkeyLog = (level: MemkeyLogLevel, message: string) => void;

export interface MemkeyCoreOptions {
  identity: ServerIdentity;
  /** Key-check values (hex key ids) a delivered key must match, e.g. the bucket config's keyIds. */
  keyIds: string[];
  /** How long an issued challenge can be used [60 s]. */
  challengeTtlMs?: number;
  /** Consecutive failed deliveries that lock deliveries [5]. */
  maxFailures?: number;
  /** How long deliveries stay locked [300 s]. */
  lockoutMs?: number;
  maxPendingChallenges?: number;
  now?: Clock;
  random?: RandomBytes;
  log?: MemkeyLog;
}

export type KeyListener = (keyId: string) => void;

export class MemkeyCore {
  readonly identity: ServerIdentity;
  readonly keyIds: readonly string[];
  private readonly book: ChallengeBook;
  readonly lockout: Lockout;
  private readonly now: Clock;
  private readonly random: RandomBytes;
  private readonly log: MemkeyLog;
  private key: Uint8Array | null = null;
  private heldKeyId: string | undefined;
  private readonly listeners = new Set<KeyListener>();
  /** Reported in the status; set by the consumer socket. */
  consumerCount: () => number = () => 0;

  constructor(opts: MemkeyCoreOptions) {
    if (opts.keyIds.length === 0) throw new MemkeyError('CONFIG', 'the server needs at least one key id to check delivered keys against');
    this.identity = opts.identity;
    this.keyIds = [...new Set(opts.keyIds.map(normalizeKeyId))];
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? defaultRandom;
    this.log = opts.log ?? (() => {});
    this.book = new ChallengeBook(opts.challengeTtlMs ?? DEFAULT_CHALLENGE_TTL_MS, opts.maxPendingChallenges ?? 256, this.now);
    this.lockout = new Lockout(opts.maxFailures ?? DEFAULT_MAX_FAILURES, opts.lockoutMs ?? DEFAULT_LOCKOUT_MS, this.now);
  }

  get fingerprint(): string {
    return this.identity.fingerprint;
  }

  get hasKey(): boolean {
    return this.key !== null;
  }

  get keyId(): string | undefined {
    return this.heldKeyId;
  }

  /** Step 1: a fresh signed challenge. LOCKED while deliveries are locked. */
  challenge(): ChallengeMessage {
    this.refuseWhileLocked();
    const { message, pending } = issueChallenge(this.identity, [...this.keyIds], this.now(), this.random);
    this.book.add(pending);
    return message;
  }

  /**
   * Step 4: takes a delivery. Every delivery that is not accepted (malformed, unknown or used
   * challenge, expired challenge, not authentic, wrong key) counts toward the lockout.
   */
  deliver(raw: unknown): AcceptedMessage {
    this.refuseWhileLocked();
    let masterKey: Uint8Array | undefined;
    let confirmKey: Uint8Array | undefined;
    try {
      const delivery = parseDelivery(raw);
      const taken = this.book.take(delivery.challenge);
      if (!taken.ok) {
        throw taken.reason === 'expired'
          ? new MemkeyError('CHALLENGE_EXPIRED', `the challenge expired (challenges are valid for ${duration(this.book.ttlMs)}); ask for a new one`)
          : new MemkeyError('CHALLENGE_UNKNOWN', 'unknown or already used challenge (a replayed delivery, or the server restarted)');
      }
      try {
        ({ masterKey, confirmKey } = openDelivery(taken.pending, delivery));
      } finally {
        taken.pending.serverKxSecret.fill(0);
      }
      const keyId = keyCheckOf(masterKey);
      if (!this.keyIds.includes(keyId)) {
        throw new MemkeyError('KEY_MISMATCH', `key-check mismatch: the delivered key has key id ${keyId}, this server accepts ${this.keyIds.join(' or ')}`);
      }
      this.lockout.succeed();
      if (this.key) {
        if (!equalBytes(this.key, masterKey)) {
          throw new MemkeyError('KEY_ALREADY_HELD', `a different key (key id ${this.heldKeyId}) is already held; restart the server to replace it`);
        }
        this.log('info', `the same key was delivered again (key id ${keyId}); nothing changed`);
        return acceptedMessage(confirmKey, keyId, true);
      }
      this.key = masterKey;
      masterKey = undefined;
      this.heldKeyId = keyId;
      this.log('info', `master key accepted (key id ${keyId}); held in memory only`);
      for (const l of [...this.listeners]) {
        try {
          l(keyId);
        } catch {
          // A listener's failure is its own business.
        }
      }
      return acceptedMessage(confirmKey, keyId, false);
    } catch (err) {
      if (err instanceof MemkeyError && err.code !== 'KEY_ALREADY_HELD') throw this.failed(err);
      throw err;
    } finally {
      masterKey?.fill(0);
      confirmKey?.fill(0);
    }
  }

  /** A status signed together with the admin's nonce. */
  status(raw: unknown): StatusMessage {
    const nonce = parseStatusRequest(raw);
    return signStatus(this.identity, nonce, this.statusSnapshot());
  }

  statusSnapshot(): ServerStatus {
    const lockedForMs = this.lockout.lockedForMs();
    const s: ServerStatus = {
      state: this.key ? 'ready' : lockedForMs > 0 ? 'locked' : 'waiting',
      fingerprint: this.fingerprint,
      keyIds: [...this.keyIds],
      failures: this.lockout.failureCount,
      maxFailures: this.lockout.maxFailures,
      consumers: this.consumerCount(),
      time: this.now(),
    };
    if (this.heldKeyId) s.heldKeyId = this.heldKeyId;
    if (lockedForMs > 0) s.lockedForMs = lockedForMs;
    return s;
  }

  /** A copy of the held key (the caller zeroes it), or null. */
  keyCopy(): Uint8Array | null {
    return this.key ? this.key.slice() : null;
  }

  /** Called with the key id whenever a key is accepted. Returns the unsubscribe function. */
  onKey(listener: KeyListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves with a copy of the key (the caller zeroes it) once one is held. */
  waitForKey(signal?: AbortSignal): Promise<Uint8Array> {
    const now = this.keyCopy();
    if (now) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        off();
        reject(signal?.reason instanceof Error ? signal.reason : new MemkeyError('TIMEOUT', 'stopped waiting for the master key'));
      };
      const off = this.onKey(() => {
        off();
        signal?.removeEventListener('abort', onAbort);
        const k = this.keyCopy();
        if (k) resolve(k);
        else reject(new MemkeyError('PROTOCOL', 'the key was wiped'));
      });
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Forgets the key and all pending challenges. */
  wipe(): void {
    this.key?.fill(0);
    this.key = null;
    this.heldKeyId = undefined;
    this.book.clear();
    this.listeners.clear();
  }

  private refuseWhileLocked(): void {
    const left = this.lockout.lockedForMs();
    if (left > 0) {
      throw new MemkeyError('LOCKED', `deliveries are locked after ${this.lockout.maxFailures} failed attempts; retry in ${Math.ceil(left / 1000)} s`, left);
    }
  }

  private failed(err: MemkeyError): MemkeyError {
    const lockedFor = this.lockout.fail();
    if (lockedFor > 0) {
      this.log('warn', `delivery rejected: ${err.message}; ${this.lockout.maxFailures} consecutive failures: deliveries locked for ${Math.ceil(lockedFor / 1000)} s`);
      return new MemkeyError(err.code, `${err.message} (deliveries are now locked for ${Math.ceil(lockedFor / 1000)} s)`);
    }
    const n = this.lockout.failureCount;
    this.log('warn', `delivery rejected: ${err.message} (failure ${n} of ${this.lockout.maxFailures})`);
    return new MemkeyError(err.code, `${err.message} (failure ${n} of ${this.lockout.maxFailures} before a lockout)`);
  }
}

/** "300 s", or "150 ms" below a second. */
export function duration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${Math.round(ms / 1000)} s`;
}
