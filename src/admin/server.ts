/**
 * The admin listener of a long-running s3cryptfs process: liveness, readiness, Prometheus metrics
 * and a live dashboard. Generic: the owner registers its readiness checks and dashboard panels.
 *
 *   GET /healthz         200 "ok" while the process serves requests
 *   GET /readyz          200 when every readiness check passes, else 503; JSON details
 *   GET /metrics         Prometheus text format
 *   GET /metrics.json    the same values as JSON (what the dashboard polls)
 *   GET /                the dashboard (one HTML page, no build step, no external assets)
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { dashboardHtml, type DashboardPanel } from './dashboard.js';
import type { MetricsRegistry } from './registry.js';

export interface ReadinessCheck {
  name: string;
  /** ok, plus a human-readable reason when not. */
  check(): { ok: boolean; detail?: string } | Promise<{ ok: boolean; detail?: string }>;
}

export interface AdminServerOptions {
  metrics: MetricsRegistry;
  readiness?: ReadinessCheck[];
  /** Dashboard title, e.g. "s3cryptfs S3 gateway". */
  title?: string;
  panels?: DashboardPanel[];
  /** Extra facts shown on the dashboard (listeners, version, fingerprint...). */
  info?: () => Record<string, string>;
}

export class AdminServer {
  readonly server: http.Server;

  constructor(private readonly opts: AdminServerOptions) {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`error: ${err instanceof Error ? err.message : String(err)}\n`);
      });
    });
    this.server.keepAliveTimeout = 5_000;
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 30_000;
  }

  async readiness(): Promise<{ ready: boolean; checks: { name: string; ok: boolean; detail?: string }[] }> {
    const checks = await Promise.all(
      (this.opts.readiness ?? []).map(async (c) => {
        try {
          return { name: c.name, ...(await c.check()) };
        } catch (err) {
          return { name: c.name, ok: false, detail: err instanceof Error ? err.message : String(err) };
        }
      }),
    );
    return { ready: checks.every((c) => c.ok), checks };
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' });
      res.end('method not allowed\n');
      return;
    }
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    switch (path) {
      case '/healthz':
        return send(200, 'text/plain; charset=utf-8', 'ok\n');
      case '/readyz': {
        const r = await this.readiness();
        return send(r.ready ? 200 : 503, 'application/json', JSON.stringify(r) + '\n');
      }
      case '/metrics':
        return send(200, this.opts.metrics.contentType, await this.opts.metrics.text());
      case '/metrics.json': {
        const r = await this.readiness();
        const body = { time: Date.now(), ready: r.ready, checks: r.checks, info: this.opts.info?.() ?? {}, metrics: await this.opts.metrics.snapshot() };
        return send(200, 'application/json', JSON.stringify(body));
      }
      case '/':
      case '/dashboard':
        return send(200, 'text/html; charset=utf-8', dashboardHtml(this.opts.title ?? 's3cryptfs', this.opts.panels ?? []));
      default:
        return send(404, 'text/plain; charset=utf-8', 'not found\n');
    }
  }

  listen(port: number, host = '127.0.0.1'): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.closeAllConnections();
      this.server.close(() => resolve());
    });
  }
}
