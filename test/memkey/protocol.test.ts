// Pure protocol functions and server state, no I/O: encode/verify/seal/open, the challenge book,
// the lockout and the core state machine with a fake clock.
import { randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import { ed25519 } from '@noble/curves/ed25519.js';
import {
  acceptanceTag,
  b64u,
  ChallengeBook,
  challengeTranscript,
  encodeFrame,
  fingerprintOf,
  FrameReader,
  fromB64u,
  identityFromSeed,
  issueChallenge,
  keyCheckOf,
  Lockout,
  MemkeyCore,
  MemkeyError,
  normalizeFingerprint,
  openDelivery,
  parseChallenge,
  parseDelivery,
  sealKey,
  signStatus,
  verifyAccepted,
  verifyChallenge,
  verifyStatus,
  type ChallengeMessage,
  type MemkeyErrorCode,
} from '../../src/memkey/index.js';

const seed = () => new Uint8Array(randomBytes(32));
const identity = identityFromSeed(seed());
const master = new Uint8Array(randomBytes(32));
const keyId = keyCheckOf(master);
const NOW = 1_700_000_000_000;

function throwsCode(t: Test, fn: () => unknown, code: MemkeyErrorCode, msg?: RegExp): void {
  try {
    fn();
    t.fail(`expected MemkeyError ${code}`);
  } catch (err) {
    t.type(err, MemkeyError);
    t.equal((err as MemkeyError).code, code, `code ${code}`);
    if (msg) t.match((err as Error).message, msg);
  }
}

/** The challenge as the admin receives it: through JSON. */
function wire(m: ChallengeMessage): unknown {
  return JSON.parse(JSON.stringify(m));
}

t.test('fingerprints: SHA-256 of the public key, lenient input, strict length', async (t) => {
  t.match(identity.fingerprint, /^[0-9a-f]{64}$/);
  t.equal(fingerprintOf(identity.publicKey), identity.fingerprint);
  const fp = identity.fingerprint;
  t.equal(normalizeFingerprint(fp.toUpperCase()), fp);
  t.equal(normalizeFingerprint(`SHA256:${fp.match(/../g)!.join(':')}`), fp);
  t.equal(normalizeFingerprint(` ${fp.slice(0, 32)} ${fp.slice(32)} `), fp);
  throwsCode(t, () => normalizeFingerprint(fp.slice(1)), 'CONFIG');
  throwsCode(t, () => normalizeFingerprint('zz'.repeat(32)), 'CONFIG');
});

t.test('challenge: issue, JSON round trip, verify', async (t) => {
  const { message, pending } = issueChallenge(identity, [keyId], NOW);
  t.equal(message.v, 1);
  t.equal(message.timestamp, NOW);
  t.same(message.keyIds, [keyId]);
  const c = parseChallenge(wire(message));
  verifyChallenge(c, identity.fingerprint, NOW + 1000);
  t.same(c.challenge, pending.challenge);
  t.same(c.serverKx, pending.serverKx);
  t.equal(c.challenge.length, 32);
  const again = issueChallenge(identity, [keyId], NOW).message;
  t.not(again.challenge, message.challenge, 'challenges are random');
  t.not(again.serverKx, message.serverKx, 'a fresh X25519 key per challenge');
});

t.test('challenge: wrong pinned fingerprint aborts first, naming both', async (t) => {
  const { message } = issueChallenge(identity, [keyId], NOW);
  const other = identityFromSeed(seed());
  throwsCode(t, () => verifyChallenge(parseChallenge(wire(message)), other.fingerprint, NOW), 'IDENTITY_MISMATCH', new RegExp(`${other.fingerprint}.*${identity.fingerprint}`));
  // An attacker who signs with its own identity is caught by the pin, not the signature.
  const attacker = identityFromSeed(seed());
  const forged = issueChallenge(attacker, [keyId], NOW).message;
  throwsCode(t, () => verifyChallenge(parseChallenge(wire(forged)), identity.fingerprint, NOW), 'IDENTITY_MISMATCH');
});

t.test('challenge: any tampered field breaks the signature', async (t) => {
  const { message } = issueChallenge(identity, [keyId], NOW);
  const flip = (s: string) => {
    const b = fromB64u(s);
    b[0] ^= 1;
    return b64u(b);
  };
  const cases: [string, ChallengeMessage][] = [
    ['signature', { ...message, signature: flip(message.signature) }],
    ['challenge', { ...message, challenge: flip(message.challenge) }],
    ['timestamp', { ...message, timestamp: message.timestamp + 1 }],
    ['server X25519 key', { ...message, serverKx: flip(message.serverKx) }],
    ['key ids', { ...message, keyIds: ['0'.repeat(32)] }],
  ];
  for (const [what, m] of cases) {
    throwsCode(t, () => verifyChallenge(parseChallenge(wire(m)), identity.fingerprint, NOW), 'BAD_SIGNATURE', /nothing was sent/);
    t.pass(`tampered ${what} rejected`);
  }
});

t.test('challenge: timestamp window, both directions', async (t) => {
  const { message } = issueChallenge(identity, [keyId], NOW);
  const c = parseChallenge(wire(message));
  verifyChallenge(c, identity.fingerprint, NOW + 119_000);
  throwsCode(t, () => verifyChallenge(c, identity.fingerprint, NOW + 121_000), 'STALE_CHALLENGE', /121 s old/);
  throwsCode(t, () => verifyChallenge(c, identity.fingerprint, NOW - 121_000), 'STALE_CHALLENGE', /in the future/);
  throwsCode(t, () => verifyChallenge(c, identity.fingerprint, NOW + 2000, 1000), 'STALE_CHALLENGE');
});

t.test('parse: malformed messages are BAD_MESSAGE', async (t) => {
  const { message } = issueChallenge(identity, [keyId], NOW);
  throwsCode(t, () => parseChallenge(null), 'BAD_MESSAGE');
  throwsCode(t, () => parseChallenge({ ...message, v: 2 }), 'BAD_MESSAGE', /version 2/);
  throwsCode(t, () => parseChallenge({ ...message, challenge: message.challenge.slice(4) }), 'BAD_MESSAGE', /challenge/);
  throwsCode(t, () => parseChallenge({ ...message, signature: '!!' }), 'BAD_MESSAGE');
  throwsCode(t, () => parseChallenge({ ...message, keyIds: [] }), 'BAD_MESSAGE');
  throwsCode(t, () => parseChallenge({ ...message, timestamp: -1 }), 'BAD_MESSAGE');
  throwsCode(t, () => parseDelivery({ v: 1 }), 'BAD_MESSAGE');
});

t.test('seal and open: the key round-trips, the proof verifies, tampering fails', async (t) => {
  const { message, pending } = issueChallenge(identity, [keyId], NOW);
  const c = parseChallenge(wire(message));
  const sealed = sealKey(c, master);
  t.notOk(JSON.stringify(sealed.message).includes(Buffer.from(master).toString('hex')), 'sealed message does not carry the key');
  const d = parseDelivery(JSON.parse(JSON.stringify(sealed.message)));
  const opened = openDelivery(pending, d);
  t.same(opened.masterKey, master);
  t.same(opened.confirmKey, sealed.confirmKey, 'both sides derive the same confirmation key');
  const accepted = { v: 1, keyId, alreadyHeld: false, confirm: b64u(acceptanceTag(opened.confirmKey, keyId)) };
  t.equal(verifyAccepted(accepted, sealed.confirmKey, keyId).keyId, keyId);
  throwsCode(t, () => verifyAccepted({ ...accepted, confirm: b64u(new Uint8Array(32)) }, sealed.confirmKey, keyId), 'BAD_CONFIRMATION');
  throwsCode(t, () => verifyAccepted(accepted, sealed.confirmKey, '1'.repeat(32)), 'BAD_CONFIRMATION');

  const second = sealKey(c, master).message;
  t.not(second.adminKx, sealed.message.adminKx, 'ephemeral admin key per delivery');
  t.not(second.sealed, sealed.message.sealed);

  const flip = (s: string, i = 0) => {
    const b = fromB64u(s);
    b[i] ^= 0x80;
    return b64u(b);
  };
  for (const f of ['sealed', 'nonce', 'adminKx'] as const) {
    const bad = parseDelivery({ ...sealed.message, [f]: flip(sealed.message[f], 5) });
    throwsCode(t, () => openDelivery(pending, bad), 'DECRYPT_FAILED');
  }
  // A delivery sealed for one challenge cannot be opened under another.
  const other = issueChallenge(identity, [keyId], NOW).pending;
  throwsCode(t, () => openDelivery(other, { ...d, challenge: other.challenge }), 'DECRYPT_FAILED');
  throwsCode(t, () => openDelivery(other, d), 'DECRYPT_FAILED');
});

t.test('signed status: nonce-bound, pinned, tamper-evident', async (t) => {
  const nonce = new Uint8Array(randomBytes(16));
  const status = { state: 'waiting' as const, fingerprint: identity.fingerprint, keyIds: [keyId], failures: 0, maxFailures: 5, consumers: 1, time: NOW };
  const m = signStatus(identity, nonce, status);
  t.same(verifyStatus(JSON.parse(JSON.stringify(m)), identity.fingerprint, nonce), status);
  throwsCode(t, () => verifyStatus(m, identity.fingerprint, new Uint8Array(16)), 'BAD_SIGNATURE');
  throwsCode(t, () => verifyStatus({ ...m, status: m.status.replace('waiting', 'ready') }, identity.fingerprint, nonce), 'BAD_SIGNATURE');
  throwsCode(t, () => verifyStatus(m, identityFromSeed(seed()).fingerprint, nonce), 'IDENTITY_MISMATCH');
});

t.test('transcript is what the identity signs', async (t) => {
  const { message, pending } = issueChallenge(identity, [keyId], NOW);
  const transcript = challengeTranscript({ challenge: pending.challenge, timestamp: NOW, serverKx: pending.serverKx, keyIds: [keyId] });
  t.ok(ed25519.verify(fromB64u(message.signature), transcript, identity.publicKey));
});

t.test('challenge book: single use, expiry, bounded', async (t) => {
  let now = NOW;
  const book = new ChallengeBook(1000, 3, () => now);
  const a = issueChallenge(identity, [keyId], now).pending;
  book.add(a);
  t.same(book.take(a.challenge), { ok: true, pending: a });
  t.same(book.take(a.challenge), { ok: false, reason: 'unknown' }, 'second use is unknown');
  const b = issueChallenge(identity, [keyId], now).pending;
  book.add(b);
  now += 1001;
  t.same(book.take(b.challenge), { ok: false, reason: 'expired' });
  t.same(b.serverKxSecret, new Uint8Array(32), 'expired secret wiped');
  const many = [0, 1, 2, 3].map(() => issueChallenge(identity, [keyId], now).pending);
  for (const p of many) book.add(p);
  t.equal(book.size, 3);
  t.same(book.take(many[0].challenge), { ok: false, reason: 'unknown' }, 'oldest evicted');
  t.equal(book.take(many[3].challenge).ok, true);
});

t.test('lockout: N failures lock for the period, then counting restarts', async (t) => {
  let now = NOW;
  const l = new Lockout(3, 500, () => now);
  t.equal(l.fail(), 0);
  t.equal(l.fail(), 0);
  t.equal(l.failureCount, 2);
  t.equal(l.fail(), 500, 'third failure locks');
  t.equal(l.lockedForMs(), 500);
  now += 499;
  t.equal(l.lockedForMs(), 1);
  now += 1;
  t.equal(l.lockedForMs(), 0, 'expired');
  t.equal(l.failureCount, 0);
  l.fail();
  l.succeed();
  t.equal(l.failureCount, 0, 'success resets');
  t.throws(() => new Lockout(0, 1));
});

t.test('core: deliveries, replay, expiry, wrong key, lockout and its expiry', async (t) => {
  let now = NOW;
  const logs: string[] = [];
  const core = new MemkeyCore({ identity, keyIds: [keyId], challengeTtlMs: 1000, maxFailures: 3, lockoutMs: 5000, now: () => now, log: (_l, m) => logs.push(m) });
  const deliver = (key: Uint8Array) => {
    const c = parseChallenge(wire(core.challenge()));
    verifyChallenge(c, identity.fingerprint, now);
    return sealKey(c, key);
  };
  const code = (fn: () => unknown): string => {
    try {
      fn();
      return 'ok';
    } catch (err) {
      return (err as MemkeyError).code;
    }
  };
  const waiting = core.waitForKey();
  let got: Uint8Array | undefined;
  void waiting.then((k) => (got = k));

  // wrong key: counted
  const wrong = new Uint8Array(randomBytes(32));
  t.equal(code(() => core.deliver(deliver(wrong).message)), 'KEY_MISMATCH');
  t.equal(core.lockout.failureCount, 1);
  // expired challenge: counted
  const late = deliver(master).message;
  now += 1001;
  t.equal(code(() => core.deliver(late)), 'CHALLENGE_EXPIRED');
  t.equal(core.lockout.failureCount, 2);
  // good delivery resets the count
  const good = deliver(master).message;
  const accepted = core.deliver(good);
  t.equal(accepted.keyId, keyId);
  t.equal(accepted.alreadyHeld, false);
  t.equal(core.lockout.failureCount, 0);
  await waiting;
  t.same(got, master, 'waiters get the key');
  // replay of the accepted delivery: unknown challenge, counted
  t.equal(code(() => core.deliver(good)), 'CHALLENGE_UNKNOWN');
  // the same key again: idempotent
  t.equal(core.deliver(deliver(master).message).alreadyHeld, true);
  // three failures lock deliveries and challenges
  t.equal(code(() => core.deliver({ v: 1 })), 'BAD_MESSAGE');
  t.equal(code(() => core.deliver(good)), 'CHALLENGE_UNKNOWN');
  t.equal(code(() => core.deliver(good)), 'CHALLENGE_UNKNOWN');
  t.equal(core.statusSnapshot().state, 'ready');
  t.equal(code(() => core.challenge()), 'LOCKED');
  t.equal(code(() => core.deliver(good)), 'LOCKED');
  now += 5000;
  t.equal(code(() => core.challenge()), 'ok', 'unlocked after the period');
  t.ok(logs.some((l) => /locked for 5 s/.test(l)), 'lockout logged');
  const hex = Buffer.from(master).toString('hex');
  t.notOk(logs.join('\n').includes(hex), 'no key in the log');
  core.wipe();
  t.equal(core.keyCopy(), null);
});

t.test('core: a different valid key is refused while one is held, without counting', async (t) => {
  const other = new Uint8Array(randomBytes(32));
  const core = new MemkeyCore({ identity, keyIds: [keyId, keyCheckOf(other)] });
  const send = (k: Uint8Array) => core.deliver(sealKey(parseChallenge(wire(core.challenge())), k).message);
  send(master);
  t.throws(() => send(other), { code: 'KEY_ALREADY_HELD' });
  t.equal(core.lockout.failureCount, 0);
  t.same(core.keyCopy(), master);
});

t.test('frames: reassembled across arbitrary chunk boundaries', async (t) => {
  const a = encodeFrame(1, Buffer.from('{"x":1}'));
  const b = encodeFrame(2, new Uint8Array(48).fill(7));
  const all = Buffer.concat([a, b]);
  const r = new FrameReader();
  const got = [];
  for (let i = 0; i < all.length; i += 5) got.push(...r.push(Buffer.from(all.subarray(i, i + 5))));
  t.equal(got.length, 2);
  t.equal(got[0].payload.toString(), '{"x":1}');
  t.same(new Uint8Array(got[1].payload), new Uint8Array(48).fill(7));
});
