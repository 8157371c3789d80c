/**
 * The memkey delivery protocol as pure functions: building, signing, verifying, sealing and opening
 * its messages. No I/O, no clocks (callers pass `now`), no state: the server's challenge book and
 * lockout live in state.ts, the transports in http.ts / socket.ts. Specified in docs/memkey.md.
 *
 *   1. challenge  server -> admin: random 32-byte challenge, timestamp, fresh X25519 public key and
 *                 the accepted key ids, signed with the server's long-term Ed25519 identity.
 *   2. verify     admin: SHA-256(identity) must equal the pinned fingerprint, the signature must
 *                 verify, the timestamp must be inside the window.
 *   3. seal       admin: ephemeral X25519, HKDF-SHA256 bound to the challenge and both public keys,
 *                 XChaCha20-Poly1305 over the master key with the challenge as associated data.
 *   4. open       server: consume the challenge, decrypt, check the key-check value; answer with an
 *                 HMAC proving that it decrypted the key (the admin verifies it).
 */
import { randomBytes as nodeRandomBytes } from 'node:crypto';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { KEY_ID_SIZE } from '../format/header.js';
import { deriveKeys, MASTER_KEY_SIZE } from '../format/kdf.js';
import { MemkeyError } from './errors.js';

export const PROTOCOL_VERSION = 1;
export const CHALLENGE_SIZE = 32;
export const PUBLIC_KEY_SIZE = 32;
export const SIGNATURE_SIZE = 64;
export const NONCE_SIZE = 24;
export const TAG_SIZE = 16;
export const SEALED_SIZE = MASTER_KEY_SIZE + TAG_SIZE;
export const CONFIRM_SIZE = 32;
export const STATUS_NONCE_SIZE = 16;
/** Largest number of key ids a challenge may carry (a bucket config lists one per rotation). */
export const MAX_KEY_IDS = 64;
/** Admin side: how far the challenge timestamp may be from the admin's clock, either way. */
export const DEFAULT_CHALLENGE_WINDOW_MS = 120_000;

const LABEL = {
  challenge: 's3cryptfs-memkey/v1/challenge',
  delivery: 's3cryptfs-memkey/v1/delivery-keys',
  accepted: 's3cryptfs-memkey/v1/accepted',
  status: 's3cryptfs-memkey/v1/status',
} as const;

export type RandomBytes = (n: number) => Uint8Array;
export const defaultRandom: RandomBytes = (n) => new Uint8Array(nodeRandomBytes(n));

// ---------------------------------------------------------------------------------------------
// Identity and fingerprints

export interface ServerIdentity {
  /** Ed25519 seed (the secret key). */
  seed: Uint8Array;
  publicKey: Uint8Array;
  /** SHA-256 of the public key, 64 lowercase hex digits. */
  fingerprint: string;
}

export function identityFromSeed(seed: Uint8Array): ServerIdentity {
  if (seed.length !== 32) throw new MemkeyError('IDENTITY_FILE', 'an identity seed is 32 bytes');
  const publicKey = ed25519.getPublicKey(seed);
  return { seed, publicKey, fingerprint: fingerprintOf(publicKey) };
}

export function fingerprintOf(publicKey: Uint8Array): string {
  return toHex(sha256(publicKey));
}

/**
 * Accepts a fingerprint as printed by the server (64 hex digits), optionally prefixed "SHA256:" and
 * with ':' or whitespace separators, in any case. Returns the 64 lowercase hex digits.
 */
export function normalizeFingerprint(text: string): string {
  const s = text.trim().replace(/^sha-?256:/i, '').replace(/[\s:]/g, '').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(s)) {
    throw new MemkeyError('CONFIG', 'a fingerprint is 64 hex digits (the SHA-256 of the server identity, as memkey-server prints it)');
  }
  return s;
}

/** Key-check value (key id, hex) of a master key, as in the bucket config's keyIds. */
export function keyCheckOf(masterKey: Uint8Array): string {
  const k = deriveKeys(masterKey);
  const id = k.keyId.toString('hex');
  k.kek.fill(0);
  k.keyId.fill(0);
  return id;
}

export function normalizeKeyId(text: string): string {
  const s = text.trim().toLowerCase();
  if (!new RegExp(`^[0-9a-f]{${KEY_ID_SIZE * 2}}$`).test(s)) {
    throw new MemkeyError('CONFIG', `a key id is ${KEY_ID_SIZE * 2} hex digits (as listed in the bucket config's keyIds), got "${text.slice(0, 80)}"`);
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// Wire messages. JSON; binary fields are unpadded base64url; `v` is the protocol version.

export interface ChallengeMessage {
  v: 1;
  challenge: string;
  /** Server clock, milliseconds since the epoch. */
  timestamp: number;
  serverKx: string;
  keyIds: string[];
  identity: string;
  signature: string;
}

export interface DeliveryMessage {
  v: 1;
  challenge: string;
  adminKx: string;
  nonce: string;
  sealed: string;
}

export interface AcceptedMessage {
  v: 1;
  keyId: string;
  /** The same key was already held (an idempotent re-delivery). */
  alreadyHeld: boolean;
  /** HMAC-SHA256(confirm key, label || key id): proof that the server opened this delivery. */
  confirm: string;
}

export interface StatusRequest {
  v: 1;
  nonce: string;
}

export interface ServerStatus {
  state: 'waiting' | 'ready' | 'locked';
  fingerprint: string;
  keyIds: string[];
  /** Key id of the held key, when ready. */
  heldKeyId?: string;
  /** When locked: milliseconds until deliveries are accepted again. */
  lockedForMs?: number;
  failures: number;
  maxFailures: number;
  /** Consumers currently connected on the Unix socket (0 for an embedded endpoint). */
  consumers: number;
  /** Server clock, milliseconds since the epoch. */
  time: number;
}

export interface StatusMessage {
  v: 1;
  /** ServerStatus as JSON text: the signature covers these exact bytes. */
  status: string;
  identity: string;
  signature: string;
}

export interface ErrorMessage {
  v: 1;
  error: { code: string; message: string; retryAfterMs?: number };
}

/** A challenge as the admin sees it, decoded. */
export interface Challenge {
  challenge: Uint8Array;
  timestamp: number;
  serverKx: Uint8Array;
  keyIds: string[];
  identity: Uint8Array;
  signature: Uint8Array;
}

/** What the server keeps about an issued challenge until it is used or expires. */
export interface PendingChallenge {
  challenge: Uint8Array;
  timestamp: number;
  serverKx: Uint8Array;
  serverKxSecret: Uint8Array;
  identity: Uint8Array;
}

export interface Delivery {
  challenge: Uint8Array;
  adminKx: Uint8Array;
  nonce: Uint8Array;
  sealed: Uint8Array;
}

// ---------------------------------------------------------------------------------------------
// 1. Challenge (server)

/** The bytes the identity signs: label, version, challenge, timestamp, server X25519 key, key ids. */
export function challengeTranscript(c: { challenge: Uint8Array; timestamp: number; serverKx: Uint8Array; keyIds: string[] }): Uint8Array {
  const ids = c.keyIds.map((id) => fromHex(normalizeKeyId(id)));
  return concat(
    utf8(LABEL.challenge),
    Uint8Array.of(0, PROTOCOL_VERSION),
    c.challenge,
    u64(c.timestamp),
    c.serverKx,
    Uint8Array.of(ids.length),
    ...ids,
  );
}

export function issueChallenge(
  identity: ServerIdentity,
  keyIds: string[],
  now: number,
  random: RandomBytes = defaultRandom,
): { message: ChallengeMessage; pending: PendingChallenge } {
  if (keyIds.length === 0 || keyIds.length > MAX_KEY_IDS) throw new RangeError(`1..${MAX_KEY_IDS} key ids`);
  const challenge = random(CHALLENGE_SIZE);
  const serverKxSecret = random(32);
  const serverKx = x25519.getPublicKey(serverKxSecret);
  const timestamp = Math.floor(now);
  const signature = ed25519.sign(challengeTranscript({ challenge, timestamp, serverKx, keyIds }), identity.seed);
  return {
    message: {
      v: PROTOCOL_VERSION,
      challenge: b64u(challenge),
      timestamp,
      serverKx: b64u(serverKx),
      keyIds: [...keyIds],
      identity: b64u(identity.publicKey),
      signature: b64u(signature),
    },
    pending: { challenge, timestamp, serverKx, serverKxSecret, identity: identity.publicKey },
  };
}

// ---------------------------------------------------------------------------------------------
// 2. Verify (admin)

export function parseChallenge(raw: unknown): Challenge {
  const m = expectObject(raw, 'challenge');
  expectVersion(m);
  const timestamp = m.timestamp;
  if (typeof timestamp !== 'number' || !Number.isSafeInteger(timestamp) || timestamp < 0) throw bad('challenge: timestamp must be a non-negative integer');
  const keyIds = m.keyIds;
  if (!Array.isArray(keyIds) || keyIds.length === 0 || keyIds.length > MAX_KEY_IDS || !keyIds.every((k) => typeof k === 'string' && /^[0-9a-f]{32}$/.test(k))) {
    throw bad('challenge: keyIds must be 1..64 key ids of 32 hex digits');
  }
  return {
    challenge: field(m, 'challenge', CHALLENGE_SIZE),
    timestamp,
    serverKx: field(m, 'serverKx', PUBLIC_KEY_SIZE),
    keyIds: [...(keyIds as string[])],
    identity: field(m, 'identity', PUBLIC_KEY_SIZE),
    signature: field(m, 'signature', SIGNATURE_SIZE),
  };
}

/**
 * Checks, in this order: the identity has the pinned fingerprint (IDENTITY_MISMATCH), the signature
 * verifies (BAD_SIGNATURE), the timestamp is within `windowMs` of `now` (STALE_CHALLENGE).
 */
export function verifyChallenge(c: Challenge, pinnedFingerprint: string, now: number, windowMs: number = DEFAULT_CHALLENGE_WINDOW_MS): void {
  const pinned = normalizeFingerprint(pinnedFingerprint);
  const presented = fingerprintOf(c.identity);
  if (presented !== pinned) {
    throw new MemkeyError(
      'IDENTITY_MISMATCH',
      `server identity mismatch: pinned fingerprint ${pinned}, the server presented ${presented}; nothing was sent. ` +
        'If the server identity was regenerated on purpose, verify the new fingerprint out of band and run memkey-admin init again',
    );
  }
  let ok = false;
  try {
    ok = ed25519.verify(c.signature, challengeTranscript(c), c.identity);
  } catch {
    ok = false;
  }
  if (!ok) throw new MemkeyError('BAD_SIGNATURE', 'the challenge signature does not verify against the pinned server identity (tampered in transit?); nothing was sent');
  const skew = c.timestamp - now;
  if (Math.abs(skew) > windowMs) {
    throw new MemkeyError(
      'STALE_CHALLENGE',
      `the challenge timestamp is ${Math.round(Math.abs(skew) / 1000)} s ${skew < 0 ? 'old' : 'in the future'} (allowed: ${Math.round(windowMs / 1000)} s); check both clocks; nothing was sent`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// 3. Seal (admin) and 4. open (server)

interface SessionKeys {
  encKey: Uint8Array;
  confirmKey: Uint8Array;
}

/**
 * HKDF-SHA256(ikm = X25519 shared secret, salt = challenge,
 *   info = label || 0 || identity || timestamp || serverKx || adminKx) -> 64 bytes:
 * the XChaCha20-Poly1305 key, then the confirmation (HMAC) key.
 */
export function sessionKeys(shared: Uint8Array, p: { challenge: Uint8Array; timestamp: number; identity: Uint8Array; serverKx: Uint8Array; adminKx: Uint8Array }): SessionKeys {
  const info = concat(utf8(LABEL.delivery), Uint8Array.of(0), p.identity, u64(p.timestamp), p.serverKx, p.adminKx);
  const okm = hkdf(sha256, shared, p.challenge, info, 64);
  const keys = { encKey: okm.slice(0, 32), confirmKey: okm.slice(32, 64) };
  okm.fill(0);
  return keys;
}

/** Encrypts `masterKey` for a verified challenge. The caller zeroes `confirmKey` when done. */
export function sealKey(c: Challenge, masterKey: Uint8Array, random: RandomBytes = defaultRandom): { message: DeliveryMessage; confirmKey: Uint8Array } {
  if (masterKey.length !== MASTER_KEY_SIZE) throw new RangeError(`master key must be ${MASTER_KEY_SIZE} bytes`);
  const adminSecret = random(32);
  const adminKx = x25519.getPublicKey(adminSecret);
  let shared: Uint8Array;
  try {
    shared = x25519.getSharedSecret(adminSecret, c.serverKx);
  } catch {
    throw new MemkeyError('BAD_MESSAGE', 'challenge: the server X25519 key is invalid');
  } finally {
    adminSecret.fill(0);
  }
  const { encKey, confirmKey } = sessionKeys(shared, { challenge: c.challenge, timestamp: c.timestamp, identity: c.identity, serverKx: c.serverKx, adminKx });
  shared.fill(0);
  const nonce = random(NONCE_SIZE);
  const sealed = xchacha20poly1305(encKey, nonce, c.challenge).encrypt(masterKey);
  encKey.fill(0);
  return {
    message: { v: PROTOCOL_VERSION, challenge: b64u(c.challenge), adminKx: b64u(adminKx), nonce: b64u(nonce), sealed: b64u(sealed) },
    confirmKey,
  };
}

export function parseDelivery(raw: unknown): Delivery {
  const m = expectObject(raw, 'delivery');
  expectVersion(m);
  return {
    challenge: field(m, 'challenge', CHALLENGE_SIZE),
    adminKx: field(m, 'adminKx', PUBLIC_KEY_SIZE),
    nonce: field(m, 'nonce', NONCE_SIZE),
    sealed: field(m, 'sealed', SEALED_SIZE),
  };
}

/**
 * Opens a delivery for its pending challenge (the caller has already looked the challenge up and
 * consumed it). Throws DECRYPT_FAILED when anything does not authenticate. The caller owns (and
 * zeroes) both returned buffers.
 */
export function openDelivery(pending: PendingChallenge, d: Delivery): { masterKey: Uint8Array; confirmKey: Uint8Array } {
  if (!equalBytes(pending.challenge, d.challenge)) throw new MemkeyError('DECRYPT_FAILED', 'the delivery is for another challenge');
  let shared: Uint8Array;
  try {
    shared = x25519.getSharedSecret(pending.serverKxSecret, d.adminKx);
  } catch {
    throw new MemkeyError('DECRYPT_FAILED', 'the delivery carries an invalid X25519 key');
  }
  const { encKey, confirmKey } = sessionKeys(shared, { challenge: pending.challenge, timestamp: pending.timestamp, identity: pending.identity, serverKx: pending.serverKx, adminKx: d.adminKx });
  shared.fill(0);
  try {
    const masterKey = xchacha20poly1305(encKey, d.nonce, pending.challenge).decrypt(d.sealed);
    return { masterKey, confirmKey };
  } catch {
    confirmKey.fill(0);
    throw new MemkeyError('DECRYPT_FAILED', 'the sealed key does not authenticate (tampered, or sealed for another challenge)');
  } finally {
    encKey.fill(0);
  }
}

export function acceptanceTag(confirmKey: Uint8Array, keyId: string): Uint8Array {
  return hmac(sha256, confirmKey, concat(utf8(LABEL.accepted), Uint8Array.of(0), fromHex(normalizeKeyId(keyId))));
}

export function acceptedMessage(confirmKey: Uint8Array, keyId: string, alreadyHeld: boolean): AcceptedMessage {
  return { v: PROTOCOL_VERSION, keyId, alreadyHeld, confirm: b64u(acceptanceTag(confirmKey, keyId)) };
}

/** Admin: checks the server's proof that it opened the delivery and accepted `expectedKeyId`. */
export function verifyAccepted(raw: unknown, confirmKey: Uint8Array, expectedKeyId: string): AcceptedMessage {
  const m = expectObject(raw, 'acceptance');
  expectVersion(m);
  if (typeof m.keyId !== 'string' || typeof m.alreadyHeld !== 'boolean') throw bad('acceptance: keyId and alreadyHeld are required');
  const confirm = field(m, 'confirm', CONFIRM_SIZE);
  if (m.keyId !== expectedKeyId || !equalBytes(confirm, acceptanceTag(confirmKey, expectedKeyId))) {
    throw new MemkeyError('BAD_CONFIRMATION', 'the server answered "accepted" but its proof does not verify; treat the delivery as failed');
  }
  return { v: PROTOCOL_VERSION, keyId: m.keyId, alreadyHeld: m.alreadyHeld, confirm: m.confirm as string };
}

// ---------------------------------------------------------------------------------------------
// Signed status (admin asks with a fresh nonce, the server signs nonce || status JSON)

export function statusTranscript(nonce: Uint8Array, statusJson: string): Uint8Array {
  return concat(utf8(LABEL.status), Uint8Array.of(0), nonce, utf8(statusJson));
}

export function signStatus(identity: ServerIdentity, nonce: Uint8Array, status: ServerStatus): StatusMessage {
  const text = JSON.stringify(status);
  return { v: PROTOCOL_VERSION, status: text, identity: b64u(identity.publicKey), signature: b64u(ed25519.sign(statusTranscript(nonce, text), identity.seed)) };
}

export function parseStatusRequest(raw: unknown): Uint8Array {
  const m = expectObject(raw, 'status request');
  expectVersion(m);
  return field(m, 'nonce', STATUS_NONCE_SIZE);
}

export function verifyStatus(raw: unknown, pinnedFingerprint: string, nonce: Uint8Array): ServerStatus {
  const m = expectObject(raw, 'status');
  expectVersion(m);
  if (typeof m.status !== 'string') throw bad('status: missing status text');
  const identity = field(m, 'identity', PUBLIC_KEY_SIZE);
  const signature = field(m, 'signature', SIGNATURE_SIZE);
  const pinned = normalizeFingerprint(pinnedFingerprint);
  const presented = fingerprintOf(identity);
  if (presented !== pinned) {
    throw new MemkeyError('IDENTITY_MISMATCH', `server identity mismatch: pinned fingerprint ${pinned}, the server presented ${presented}`);
  }
  let ok = false;
  try {
    ok = ed25519.verify(signature, statusTranscript(nonce, m.status), identity);
  } catch {
    ok = false;
  }
  if (!ok) throw new MemkeyError('BAD_SIGNATURE', 'the status signature does not verify against the pinned server identity');
  let status: unknown;
  try {
    status = JSON.parse(m.status);
  } catch {
    throw bad('status: not JSON');
  }
  const s = expectObject(status, 'status');
  if (s.state !== 'waiting' && s.state !== 'ready' && s.state !== 'locked') throw bad('status: unknown state');
  return s as unknown as ServerStatus;
}

// ---------------------------------------------------------------------------------------------
// Errors on the wire

export function errorMessage(code: string, message: string, retryAfterMs?: number): ErrorMessage {
  return { v: PROTOCOL_VERSION, error: retryAfterMs === undefined ? { code, message } : { code, message, retryAfterMs } };
}

// ---------------------------------------------------------------------------------------------
// Encoding helpers

export function b64u(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('base64url');
}

export function fromB64u(text: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw bad('not base64url');
  return new Uint8Array(Buffer.from(text, 'base64url'));
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('hex');
}

export function fromHex(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function utf8(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

function u64(n: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n));
  return out;
}

function bad(message: string): MemkeyError {
  return new MemkeyError('BAD_MESSAGE', message);
}

function expectObject(raw: unknown, what: string): Record<string, unknown> {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw bad(`${what}: expected a JSON object`);
  return raw as Record<string, unknown>;
}

function expectVersion(m: Record<string, unknown>): void {
  if (m.v !== PROTOCOL_VERSION) throw bad(`unsupported protocol version ${String(m.v)} (this side speaks ${PROTOCOL_VERSION})`);
}

function field(m: Record<string, unknown>, name: string, size: number): Uint8Array {
  const v = m[name];
  if (typeof v !== 'string') throw bad(`${name}: missing`);
  const bytes = fromB64u(v);
  if (bytes.length !== size) throw bad(`${name}: expected ${size} bytes, got ${bytes.length}`);
  return bytes;
}
