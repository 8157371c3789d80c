// Test harness: a real S3 server (s3rver in a child process) per test file,
// with a fresh data directory that is removed again on stop().

import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { startEmbeddedS3 } from '../../src/store/embedded-s3.js';
import { ObjectStore, type StoreOptions } from '../../src/store/store.js';

export interface S3Server {
  endpoint: string;
  port: number;
  dir: string;
  accessKeyId: 'S3RVER';
  secretAccessKey: 'S3RVER';
  stop(): Promise<void>;
}

export async function startS3Server(): Promise<S3Server> {
  const dir = await mkdtemp(path.join(tmpdir(), 's3cryptfs-s3rver-'));
  try {
    const server = await startEmbeddedS3({ dir });
    let stopped: Promise<void> | undefined;
    return {
      endpoint: server.endpoint,
      port: server.port,
      dir,
      accessKeyId: server.accessKeyId,
      secretAccessKey: server.secretAccessKey,
      stop: () =>
        (stopped ??= (async () => {
          await server.stop();
          await rm(dir, { recursive: true, force: true });
        })()),
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

export function randomBucketName(): string {
  return `test-${randomBytes(6).toString('hex')}`;
}

/** An ObjectStore pointed at `server` with s3rver's fixed credentials. */
export function storeFor(server: { endpoint: string }, overrides: StoreOptions = {}): ObjectStore {
  return new ObjectStore({
    endpoint: server.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    ...overrides,
  });
}

interface Teardownable {
  teardown(fn: () => unknown): void;
}

export interface WithS3 {
  server: S3Server;
  store: ObjectStore;
  bucket: string;
  endpoint: string;
}

/**
 * Starts a server, creates a fresh bucket and registers teardown (which runs
 * even when the test fails) to close the store and stop the server.
 */
export async function withS3(t: Teardownable, storeOptions: StoreOptions = {}): Promise<WithS3> {
  const server = await startS3Server();
  t.teardown(() => server.stop());
  const store = storeFor(server, storeOptions);
  t.teardown(() => store.destroy());
  const bucket = randomBucketName();
  await store.createBucket(bucket);
  return { server, store, bucket, endpoint: server.endpoint };
}
