/**
 * A progress bar over a number of items (objects) with rate and ETA, on stderr, only on a terminal
 * and when enabled. Byte transfers use src/cli/progress.ts; this one counts objects.
 */
import cliProgress from 'cli-progress';

export interface CountProgress {
  setTotal(total: number): void;
  update(done: number, detail?: string): void;
  stop(): void;
}

export function createCountProgress(label: string, enabled: boolean, stream: NodeJS.WriteStream = process.stderr): CountProgress {
  if (!enabled || !stream.isTTY) return { setTotal() {}, update() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: `${label} [{bar}] {percentage}% {value}/{total} objects, {rate}/s, eta {eta_formatted} {detail}`,
      hideCursor: true,
      clearOnComplete: true,
      barsize: 30,
      etaBuffer: 100,
      fps: 5,
    },
    cliProgress.Presets.shades_classic,
  );
  const started = Date.now();
  let running = false;
  const payload = (done: number, detail = '') => ({
    rate: (done / Math.max(0.001, (Date.now() - started) / 1000)).toFixed(1),
    detail,
  });
  return {
    setTotal(total) {
      if (!running) {
        bar.start(total, 0, payload(0));
        running = true;
      } else bar.setTotal(total);
    },
    update(done, detail) {
      if (running) bar.update(done, payload(done, detail));
    },
    stop() {
      if (running) bar.stop();
      running = false;
    },
  };
}
