/** Admin listener and metrics registry shared by the long-running s3cryptfs processes. */
export { MetricsRegistry, type MetricsRegistryOptions } from './registry.js';
export { storeMetrics } from './store-metrics.js';
export { AdminServer, type AdminServerOptions, type ReadinessCheck } from './server.js';
export type { DashboardPanel } from './dashboard.js';
