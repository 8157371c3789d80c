/**
 * `s3cryptfs verify s3://BUCKET[/PREFIX]` (scrub): download and authenticate every object below a
 * location (or a random sample), a bounded number at a time, with a progress bar; report each
 * failure with its S3 key (and as JSON with --report); exit 7 when any object fails authentication.
 */
import { writeFile } from 'node:fs/promises';
import type { EngineWarning } from '../engine/index.js';
import { CONFIG_OBJECT_NAME } from '../format/config.js';
import { createCountProgress } from '../ops/progress.js';
import { scrub } from '../ops/scrub.js';
import type { CliCommand } from './command.js';
import { openBucket } from './bucket.js';
import { CliError } from './errors.js';
import { classifyError, ExitCode, type ExitCodeValue } from './exit-codes.js';
import { humanSize, writeOut } from './output.js';
import { parseS3Url } from './s3url.js';
import { say } from './say.js';

const WARNING_TEXT: Record<EngineWarning['code'], string> = {
  BAD_NAME: 'name does not decrypt with this key (foreign or tampered object)',
  INVALID_SIZE: 'size no s3cryptfs object can have (truncated or extended)',
  BAD_ATTRIBUTES: 'attributes fail authentication',
  BAD_DIR_INDEX: 'directory attribute index fails authentication',
};

interface ReportedFailure {
  /** Plaintext path, when the name decrypts. */
  path?: string;
  /** S3 key. */
  key: string;
  code: string;
  message: string;
  exitCode: ExitCodeValue;
}

export const verifyCommand: CliCommand = {
  command: 'verify <location>',
  describe: 'Authenticate every object below a location (scrub); exit 7 if any fails',
  builder: (y) =>
    y
      .positional('location', { type: 'string', describe: 's3://BUCKET[/PREFIX]' })
      .options({
        sample: { type: 'number', requiresArg: true, describe: 'Verify only this many objects, chosen at random' },
        report: { type: 'string', requiresArg: true, describe: 'Also write a JSON report (counts and every failure) to this file' },
      })
      .example('$0 verify s3://my-bucket', 'check the whole store')
      .example('$0 verify --concurrency 32 s3://my-bucket/photos/', 'one directory, 32 objects at a time')
      .example('$0 verify --sample 100 --report scrub.json s3://my-bucket', 'a random sample of 100 objects, report as JSON'),
  async run(args, rt) {
    const url = parseS3Url(args.location as string);
    let sampleSize: number | undefined;
    if (args.sample !== undefined) {
      if (typeof args.sample !== 'number' || !Number.isInteger(args.sample) || args.sample < 1) {
        throw new CliError(ExitCode.USAGE, '--sample must be a positive whole number');
      }
      sampleSize = args.sample;
    }
    const opened = await openBucket(rt, url, 'dir');
    const { engine } = opened;
    const dir = opened.path.replace(/\/+$/, '');
    const failures: ReportedFailure[] = [];
    const progress = createCountProgress('verifying', rt.progress);
    let started = false;

    const result = await scrub(engine, {
      dir,
      sample: sampleSize,
      concurrency: Math.max(1, rt.concurrency),
      signal: rt.signal,
      onProgress: (done, total, bytes) => {
        if (!started) {
          progress.setTotal(total);
          started = true;
        }
        progress.update(done, humanSize(bytes));
      },
    }).catch((err: unknown) => {
      progress.stop();
      if (rt.signal.aborted) throw new CliError(ExitCode.INTERRUPTED, 'interrupted');
      throw err;
    });
    progress.stop();
    let { ok, bytes } = result;
    for (const f of result.failures) {
      const { exitCode, message } = classifyError(f.error);
      failures.push({ path: f.path, key: f.key, code: f.code, message, exitCode });
    }

    // A location that names one object rather than a directory.
    if (result.listed === 0 && dir !== '' && !opened.path.endsWith('/') && (await engine.stat(dir))) {
      try {
        bytes += (await engine.verify(dir)).size;
        ok++;
      } catch (err) {
        const { exitCode, message } = classifyError(err);
        failures.push({ path: dir, key: engine.objectKey(dir), code: (err as { code?: string }).code ?? 'ERROR', message, exitCode });
      }
    }

    // A store initialised inside this one (its own .s3cryptfs.json) has names this key cannot read:
    // not a failure, it is verified on its own.
    const nested = opened.warnings
      .filter((w) => w.key.endsWith('/' + CONFIG_OBJECT_NAME))
      .map((w) => w.key.slice(0, -CONFIG_OBJECT_NAME.length));
    for (const p of nested) process.stderr.write(`s3cryptfs: skipping nested store s3://${opened.bucket}/${p} (verify it separately)\n`);
    for (const w of opened.warnings) {
      if (nested.some((p) => w.key.startsWith(p))) continue;
      failures.push({ key: w.key, code: w.code, message: WARNING_TEXT[w.code] ?? w.message, exitCode: ExitCode.INTEGRITY });
    }

    for (const f of failures) {
      const line = f.path !== undefined
        ? `FAILED ${f.path}: ${f.message} (${f.code}; s3://${opened.bucket}/${f.key})`
        : `FAILED s3://${opened.bucket}/${f.key}: ${f.message} (${f.code})`;
      await writeOut(line + '\n');
    }
    const sampled = sampleSize !== undefined && sampleSize < result.listed ? ` (a random sample of ${result.checked} of ${result.listed})` : '';
    say(rt, `verified ${ok} object(s)${sampled}, ${humanSize(bytes)}; ${failures.length} failed`);
    if (typeof args.report === 'string') {
      const report = {
        bucket: opened.bucket, prefix: opened.prefix, location: String(args.location), finished: new Date().toISOString(),
        listed: result.listed, checked: result.checked + (failures.length - result.failures.length), ok, bytes,
        sample: sampleSize ?? null, nested,
        failures: failures.map(({ exitCode: _e, ...f }) => f),
      };
      await writeFile(args.report, JSON.stringify(report, null, 2) + '\n');
    }
    if (failures.length === 0) return ExitCode.OK;
    return failures.some((f) => f.exitCode === ExitCode.INTEGRITY) ? ExitCode.INTEGRITY : failures[0].exitCode;
  },
};
