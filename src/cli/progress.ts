/**
 * Transfer progress on stderr: a cli-progress bar, only when stderr is a terminal, progress is not
 * disabled, and the transfer is still running after a short delay (short transfers stay quiet).
 */
import cliProgress from 'cli-progress';
import { humanSize } from './output.js';

const SHOW_AFTER_MS = 1000;

export interface Progress {
  add(bytes: number): void;
  stop(): void;
}

export function createProgress(label: string, total: number | undefined, enabled: boolean): Progress {
  if (!enabled || !process.stderr.isTTY) return { add() {}, stop() {} };
  let done = 0;
  let bar: cliProgress.SingleBar | undefined;
  const started = Date.now();
  const timer = setTimeout(() => {
    bar = new cliProgress.SingleBar(
      {
        stream: process.stderr,
        format: total
          ? `${label} [{bar}] {percentage}% {done}/{size} {rate}/s eta {eta_formatted}`
          : `${label} {done} {rate}/s`,
        hideCursor: true,
        clearOnComplete: true,
        barsize: 30,
        etaBuffer: 50,
        formatValue: (v, _o, type) => (type === 'value' || type === 'total' ? String(v) : String(v)),
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total ?? 0, done, payload());
  }, SHOW_AFTER_MS);
  timer.unref();
  function payload() {
    const secs = Math.max(0.001, (Date.now() - started) / 1000);
    return { done: humanSize(done), size: total !== undefined ? humanSize(total) : '?', rate: humanSize(Math.round(done / secs)) };
  }
  return {
    add(bytes: number) {
      done += bytes;
      bar?.update(done, payload());
    },
    stop() {
      clearTimeout(timer);
      bar?.stop();
    },
  };
}
