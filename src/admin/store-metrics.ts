/**
 * Backend (S3) request metrics of an ObjectStore, shared by the gateway's and the mount's
 * registries: requests and retries by operation, bytes sent and received. The store keeps
 * monotonic totals; each scrape adds what changed since the last one.
 */
import type { Counter } from 'prom-client';
import type { StoreStats } from '../store/store.js';
import type { MetricsRegistry } from './registry.js';

export function storeMetrics(m: MetricsRegistry, stats: () => StoreStats): void {
  byOperation(m, 'backend_requests_total', 'S3 requests sent to the backend, by operation, retries included', () => stats().requests);
  byOperation(m, 'backend_retries_total',
    'Backend S3 requests retried after a 5xx, throttling or network error (SDK retries with backoff) or a body that broke off (resumed), by operation',
    () => stats().retriesByOp);
  total(m, 'backend_sent_bytes_total', 'Bytes sent to the backend (request bodies)', () => stats().bytesSent);
  total(m, 'backend_received_bytes_total', 'Bytes received from the backend (response bodies)', () => stats().bytesReceived);
}

function byOperation(m: MetricsRegistry, name: string, help: string, read: () => Record<string, number>): Counter<'operation'> {
  const last = new Map<string, number>();
  return m.counter(name, help, ['operation'], function () {
    for (const [operation, n] of Object.entries(read())) {
      const prev = last.get(operation) ?? 0;
      if (n > prev) this.inc({ operation }, n - prev);
      last.set(operation, Math.max(prev, n));
    }
  });
}

function total(m: MetricsRegistry, name: string, help: string, read: () => number): void {
  let last = 0;
  m.counter(name, help, [], function () {
    const now = read();
    if (now > last) this.inc(now - last);
    last = Math.max(last, now);
  });
}
