/**
 * memkey-server assembled: the core, the admin protocol on HTTP(S) and the consumer Unix socket.
 * The key lives only in this process's memory and is wiped by stop().
 */
import { MemkeyCore, type MemkeyCoreOptions } from './core.js';
import { listenAdmin, type AdminListener, type ListenAddress } from './http.js';
import { listenConsumers, type ConsumerSocket } from './socket.js';

export interface MemkeyServerOptions extends MemkeyCoreOptions {
  /** Admin protocol listener, "HOST:PORT" or {host, port}. */
  listen: ListenAddress | string;
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Consumer Unix socket; omitted: no local consumers (an embedded endpoint). */
  socketPath?: string;
  socketMode?: number;
}

export interface MemkeyServer {
  core: MemkeyCore;
  fingerprint: string;
  /** Admin protocol URL, e.g. http://127.0.0.1:7431 */
  url: string;
  port: number;
  socketPath?: string;
  /** Resolves with a copy of the key (the caller zeroes it) once one has been delivered. */
  waitForKey(signal?: AbortSignal): Promise<Uint8Array>;
  /** Closes the listeners, removes the socket file and wipes the key. */
  stop(): Promise<void>;
}

export async function startMemkeyServer(opts: MemkeyServerOptions): Promise<MemkeyServer> {
  const core = new MemkeyCore(opts);
  let admin: AdminListener | undefined;
  let consumers: ConsumerSocket | undefined;
  try {
    admin = await listenAdmin({ listen: opts.listen, core, tls: opts.tls });
    if (opts.socketPath !== undefined) {
      consumers = await listenConsumers({ path: opts.socketPath, mode: opts.socketMode, core, adminUrls: [admin.url] });
    }
  } catch (err) {
    await admin?.close();
    core.wipe();
    throw err;
  }
  let stopped: Promise<void> | undefined;
  return {
    core,
    fingerprint: core.fingerprint,
    url: admin.url,
    port: admin.port,
    socketPath: consumers?.path,
    waitForKey: (signal) => core.waitForKey(signal),
    stop: () =>
      (stopped ??= (async () => {
        await Promise.all([admin?.close(), consumers?.close()]);
        core.wipe();
      })()),
  };
}
