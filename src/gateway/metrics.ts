/** The gateway's metrics, registered on an admin MetricsRegistry. */
import type { Counter, Gauge, Histogram } from 'prom-client';
import type { DashboardPanel } from '../admin/dashboard.js';
import type { MetricsRegistry } from '../admin/registry.js';

export interface GatewayMetrics {
  requests: Counter<'operation' | 'status'>;
  latency: Histogram<'operation'>;
  inFlight: Gauge;
  bytesEncrypted: Counter;
  bytesDecrypted: Counter;
  integrityFailures: Counter;
  observe(operation: string, status: number, seconds: number): void;
}

export function gatewayMetrics(registry: MetricsRegistry): GatewayMetrics {
  const requests = registry.counter('gateway_requests_total', 'S3 requests handled, by operation and HTTP status', ['operation', 'status']);
  const latency = registry.histogram('gateway_request_duration_seconds', 'Time from request to the end of the response, by operation', ['operation'],
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]);
  const inFlight = registry.gauge('gateway_requests_in_flight', 'S3 requests being handled');
  const bytesEncrypted = registry.counter('gateway_bytes_encrypted_total', 'Plaintext bytes received from clients and encrypted');
  const bytesDecrypted = registry.counter('gateway_bytes_decrypted_total', 'Plaintext bytes decrypted and sent to clients');
  const integrityFailures = registry.counter('gateway_integrity_failures_total', 'Stored objects that failed authentication (tampered or corrupted)');
  return {
    requests, latency, inFlight, bytesEncrypted, bytesDecrypted, integrityFailures,
    observe(operation, status, seconds) {
      requests.inc({ operation, status: String(status) });
      latency.observe({ operation }, seconds);
    },
  };
}

export function gatewayPanels(prefix: string): DashboardPanel[] {
  return [
    { title: 'Requests', metric: `${prefix}gateway_requests_total`, kind: 'rate', by: 'operation' },
    { title: 'Responses by status', metric: `${prefix}gateway_requests_total`, kind: 'rate', by: 'status' },
    { title: 'Latency (all operations)', metric: `${prefix}gateway_request_duration_seconds`, kind: 'quantiles' },
    { title: 'In flight', metric: `${prefix}gateway_requests_in_flight`, kind: 'gauge' },
    { title: 'Encrypted (uploads)', metric: `${prefix}gateway_bytes_encrypted_total`, kind: 'bytes-rate' },
    { title: 'Decrypted (downloads)', metric: `${prefix}gateway_bytes_decrypted_total`, kind: 'bytes-rate' },
    { title: 'Backend retries', metric: `${prefix}backend_retries_total`, kind: 'rate', by: 'operation' },
    { title: 'Integrity failures', metric: `${prefix}gateway_integrity_failures_total`, kind: 'gauge' },
    { title: 'Resident memory', metric: `${prefix}process_resident_memory_bytes`, kind: 'bytes' },
    { title: 'CPU', metric: `${prefix}process_cpu_seconds_total`, kind: 'rate' },
  ];
}
