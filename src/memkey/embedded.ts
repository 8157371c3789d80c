/**
 * A memkey endpoint inside another daemon (mount, serve-s3): `--memkey-listen HOST:PORT`. The
 * daemon waits for the administrator's delivery itself, with no memkey-server and no Unix socket.
 *
 *   const mk = await startEmbeddedMemkey({ listen: '0.0.0.0:7431', identityFile, keyIds: config.keyIds });
 *   log(`waiting for the master key: deliver to ${mk.url}, fingerprint ${mk.fingerprint}`);
 *   const key = await mk.waitForKey();   // a copy; zero it when done
 *   await mk.stop();                     // optional: close the endpoint once the key is in
 */
import type { MemkeyLog } from './core.js';
import { loadIdentityFile } from './identity.js';
import type { ServerIdentity } from './protocol.js';
import { startMemkeyServer } from './server.js';

export interface EmbeddedMemkeyOptions {
  /** "HOST:PORT" for the admin protocol. */
  listen: string;
  /** Identity file (from `s3cryptfs memkey-server --generate-identity`), or the identity itself. */
  identityFile?: string;
  identity?: ServerIdentity;
  /** Key-check values the delivered key must match: the bucket config's keyIds. */
  keyIds: string[];
  tls?: { cert: string | Buffer; key: string | Buffer };
  challengeTtlMs?: number;
  maxFailures?: number;
  lockoutMs?: number;
  log?: MemkeyLog;
}

export interface EmbeddedMemkey {
  fingerprint: string;
  url: string;
  /** Resolves with a copy of the delivered key (the caller zeroes it). */
  waitForKey(signal?: AbortSignal): Promise<Uint8Array>;
  /** Closes the endpoint and wipes the key it holds. */
  stop(): Promise<void>;
}

export async function startEmbeddedMemkey(opts: EmbeddedMemkeyOptions): Promise<EmbeddedMemkey> {
  const identity = opts.identity ?? (opts.identityFile !== undefined ? await loadIdentityFile(opts.identityFile) : undefined);
  if (!identity) throw new TypeError('startEmbeddedMemkey: identityFile or identity is required');
  const server = await startMemkeyServer({
    identity,
    keyIds: opts.keyIds,
    listen: opts.listen,
    tls: opts.tls,
    challengeTtlMs: opts.challengeTtlMs,
    maxFailures: opts.maxFailures,
    lockoutMs: opts.lockoutMs,
    log: opts.log,
  });
  return { fingerprint: server.fingerprint, url: server.url, waitForKey: server.waitForKey, stop: server.stop };
}
