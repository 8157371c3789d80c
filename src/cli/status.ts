/**
 * `s3cryptfs status [MOUNTPOINT]`: what a running mount is doing, asked over its control socket
 * (src/ops/mount-ops.ts): uploads in flight with their progress, cache use, transfer totals, errors.
 * Without a mount point, every mount of this user that has a control socket.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { controlSocketDir, controlSocketPath, fetchStatus, type MountStatus } from '../ops/mount-ops.js';
import type { CliCommand } from './command.js';
import { CliError } from './errors.js';
import { ExitCode } from './exit-codes.js';
import { humanSize, writeOut } from './output.js';

export const statusCommand: CliCommand = {
  command: 'status [mountpoint]',
  describe: 'Show what a running mount is doing (uploads, cache, errors)',
  builder: (y) =>
    y
      .positional('mountpoint', { type: 'string', describe: 'Mount point [default: every mount of this user]' })
      .options({
        socket: { type: 'string', requiresArg: true, describe: 'Control socket of the mount [default: derived from the mount point]' },
        json: { type: 'boolean', describe: 'Print the raw status as JSON' },
      })
      .example('$0 status ~/vault', 'one mount')
      .example('$0 status --json', 'every mount, as JSON'),
  async run(args, rt) {
    let sockets: string[];
    if (typeof args.socket === 'string') sockets = [path.resolve(args.socket)];
    else if (typeof args.mountpoint === 'string') sockets = [controlSocketPath(args.mountpoint, rt.env)];
    else {
      const dir = controlSocketDir(rt.env);
      sockets = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.sock')).map((f) => path.join(dir, f));
      if (sockets.length === 0) throw new CliError(ExitCode.NOT_FOUND, `no running mount found (no control socket in ${dir})`);
    }
    const statuses: MountStatus[] = [];
    for (const socket of sockets) {
      try {
        statuses.push(await fetchStatus(socket));
      } catch (err) {
        const what = typeof args.mountpoint === 'string' ? `${args.mountpoint} is not a running s3cryptfs mount (or was started without a control socket)` : `stale control socket ${socket}`;
        if (sockets.length === 1) throw new CliError(ExitCode.NOT_FOUND, `${what}: ${(err as Error).message}`);
        process.stderr.write(`s3cryptfs: ${what}\n`);
      }
    }
    if (args.json === true) {
      await writeOut(JSON.stringify(statuses.length === 1 && sockets.length === 1 ? statuses[0] : statuses, null, 2) + '\n');
      return ExitCode.OK;
    }
    for (const s of statuses) await writeOut(formatStatus(s));
    return ExitCode.OK;
  },
};

export function formatStatus(s: MountStatus): string {
  const lines = [
    `${s.mountpoint}: ${s.source} (pid ${s.pid}, up ${duration(s.uptimeSeconds)}, names ${s.names === 'plain' ? 'in plaintext' : 'encrypted'})`,
    `  uploads in flight: ${s.uploads.length} file(s), ${s.uploadPartsInFlight} part(s) being sent`,
    ...s.uploads.map((u) => `    ${u.path}: ${humanSize(u.bytesWritten)} so far, ${humanSize(u.rate)}/s, ${duration(u.seconds)}`),
    `  cache: ${humanSize(s.cache.bytes)}${s.cache.capacity !== undefined ? ` of ${humanSize(s.cache.capacity)}` : ''}, ` +
      `${s.cache.hits} hit(s), ${s.cache.misses} miss(es)${s.cache.hits + s.cache.misses > 0 ? ` (${Math.round((100 * s.cache.hits) / (s.cache.hits + s.cache.misses))}% hits)` : ''}`,
    `  transfer: read ${humanSize(s.transfer.bytesRead)}, written ${humanSize(s.transfer.bytesWritten)}; fetched ${humanSize(s.transfer.bytesFetched)}, ` +
      `uploaded ${humanSize(s.transfer.bytesUploaded)}; ${s.transfer.requests} S3 request(s), ${s.transfer.retries} retried`,
    `  errors: ${s.errors.total}${s.errors.integrity ? ` (${s.errors.integrity} integrity failure(s))` : ''}`,
    ...s.errors.recent.slice(-5).map((e) => `    ${e.at} ${e.op} ${e.key}: ${e.code}: ${e.message}`),
    ...(s.admin ? [`  metrics and dashboard: ${s.admin}/`] : []),
  ];
  return lines.join('\n') + '\n';
}

function duration(seconds: number): string {
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  return `${(seconds / 3600).toFixed(1)}h`;
}
