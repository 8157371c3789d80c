/** Server-side bookkeeping with an injectable clock: issued challenges and the delivery lockout. */
import { b64u, type PendingChallenge } from './protocol.js';

export type Clock = () => number;

export type TakeResult = { ok: true; pending: PendingChallenge } | { ok: false; reason: 'unknown' | 'expired' };

/**
 * Challenges issued and not yet used. Each is single-use: take() removes it whatever happens next.
 * At most `max` are outstanding; issuing more evicts the oldest (its delivery then fails as unknown).
 */
export class ChallengeBook {
  private readonly pending = new Map<string, PendingChallenge>();

  constructor(
    readonly ttlMs: number,
    readonly max: number = 256,
    private readonly now: Clock = Date.now,
  ) {}

  get size(): number {
    return this.pending.size;
  }

  add(p: PendingChallenge): void {
    this.sweep();
    while (this.pending.size >= this.max) {
      const oldest = this.pending.keys().next().value as string;
      this.wipe(oldest);
    }
    this.pending.set(b64u(p.challenge), p);
  }

  take(challenge: Uint8Array): TakeResult {
    const id = b64u(challenge);
    const p = this.pending.get(id);
    if (!p) return { ok: false, reason: 'unknown' };
    this.pending.delete(id);
    if (this.now() - p.timestamp > this.ttlMs) {
      p.serverKxSecret.fill(0);
      return { ok: false, reason: 'expired' };
    }
    return { ok: true, pending: p };
  }

  clear(): void {
    for (const id of [...this.pending.keys()]) this.wipe(id);
  }

  private sweep(): void {
    const t = this.now();
    // Insertion order is issue order, so the expired ones are at the front.
    for (const [id, p] of this.pending) {
      if (t - p.timestamp <= this.ttlMs) break;
      this.wipe(id);
    }
  }

  private wipe(id: string): void {
    this.pending.get(id)?.serverKxSecret.fill(0);
    this.pending.delete(id);
  }
}

/**
 * `maxFailures` consecutive failed deliveries lock deliveries (and challenges) for `lockMs`; the
 * count starts again from zero once the lock expires. A successful delivery resets it.
 */
export class Lockout {
  private failures = 0;
  private lockedUntil = 0;

  constructor(
    readonly maxFailures: number,
    readonly lockMs: number,
    private readonly now: Clock = Date.now,
  ) {
    if (!Number.isInteger(maxFailures) || maxFailures < 1) throw new RangeError('maxFailures must be an integer >= 1');
    if (!(lockMs >= 0)) throw new RangeError('lockMs must be >= 0');
  }

  /** Milliseconds until unlocked, or 0 when not locked. */
  lockedForMs(): number {
    const left = this.lockedUntil - this.now();
    if (left > 0) return left;
    return 0;
  }

  get failureCount(): number {
    return this.lockedForMs() > 0 ? this.maxFailures : this.failures;
  }

  /** Records a failure; returns the lock duration when this failure locked deliveries, else 0. */
  fail(): number {
    if (this.lockedForMs() > 0) return 0;
    this.failures++;
    if (this.failures >= this.maxFailures) {
      this.failures = 0;
      this.lockedUntil = this.now() + this.lockMs;
      return this.lockMs;
    }
    return 0;
  }

  succeed(): void {
    this.failures = 0;
  }
}
