/**
 * A metrics registry for any long-running s3cryptfs process (the S3 gateway, the mount): a thin
 * wrapper over prom-client that namespaces metric names, optionally adds the process metrics, and
 * renders the Prometheus text format or a JSON snapshot for the dashboard.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type MetricObjectWithValues, type MetricValue } from 'prom-client';

export interface MetricsRegistryOptions {
  /** Prepended to every metric name (default "s3cryptfs_"). */
  prefix?: string;
  /** Process metrics: CPU, memory, event loop lag, open files (default true). */
  processMetrics?: boolean;
}

export class MetricsRegistry {
  readonly registry = new Registry();
  readonly prefix: string;

  constructor(opts: MetricsRegistryOptions = {}) {
    this.prefix = opts.prefix ?? 's3cryptfs_';
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: this.prefix });
  }

  counter<L extends string = string>(name: string, help: string, labelNames: L[] = [], collect?: (this: Counter<L>) => void): Counter<L> {
    return new Counter({ name: this.prefix + name, help, labelNames, registers: [this.registry], ...(collect ? { collect } : {}) });
  }

  gauge<L extends string = string>(name: string, help: string, labelNames: L[] = [], collect?: (this: Gauge<L>) => void): Gauge<L> {
    return new Gauge({ name: this.prefix + name, help, labelNames, registers: [this.registry], ...(collect ? { collect } : {}) });
  }

  histogram<L extends string = string>(name: string, help: string, labelNames: L[] = [], buckets?: number[]): Histogram<L> {
    return new Histogram({ name: this.prefix + name, help, labelNames, registers: [this.registry], ...(buckets ? { buckets } : {}) });
  }

  /** Prometheus text exposition format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Every metric with its current values. */
  async snapshot(): Promise<{ name: string; help: string; type: string; values: MetricValue<string>[] }[]> {
    const all = (await this.registry.getMetricsAsJSON()) as MetricObjectWithValues<MetricValue<string>>[];
    return all.map((m) => ({ name: m.name, help: m.help, type: String(m.type), values: m.values }));
  }
}
