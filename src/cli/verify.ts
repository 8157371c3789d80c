/**
 * `s3cryptfs verify s3://BUCKET[/PREFIX]`: download and authenticate every object below a location,
 * a bounded number at a time; report each failure; exit 7 when any object fails authentication.
 */
import type { EngineWarning } from '../engine/index.js';
import { CONFIG_OBJECT_NAME } from '../format/config.js';
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
};

export const verifyCommand: CliCommand = {
  command: 'verify <location>',
  describe: 'Authenticate every object below a location; exit 7 if any fails',
  builder: (y) =>
    y
      .positional('location', { type: 'string', describe: 's3://BUCKET[/PREFIX]' })
      .example('$0 verify s3://my-bucket', 'check the whole store')
      .example('$0 verify --concurrency 32 s3://my-bucket/photos/', 'one directory, 32 objects at a time'),
  async run(args, rt) {
    const url = parseS3Url(args.location as string);
    const opened = await openBucket(rt, url, 'dir');
    const { engine } = opened;
    const dir = opened.path.replace(/\/+$/, '');
    const failures: { what: string; message: string; code: ExitCodeValue }[] = [];
    let ok = 0;
    let bytes = 0;

    const check = async (path: string) => {
      try {
        bytes += (await engine.verify(path)).size;
        ok++;
      } catch (err) {
        const { exitCode, message } = classifyError(err);
        failures.push({ what: path, message, code: exitCode });
        await writeOut(`FAILED ${path}: ${message}\n`);
      }
    };

    let listed = 0;
    const paths = (async function* () {
      for await (const page of engine.listAll(dir, { recursive: true })) {
        for (const f of page.files) {
          listed++;
          yield f.path;
        }
      }
    })();
    const worker = async () => {
      for (;;) {
        if (rt.signal.aborted) throw new CliError(ExitCode.INTERRUPTED, 'interrupted');
        const next = await paths.next();
        if (next.done) return;
        await check(next.value);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, rt.concurrency) }, worker));

    // A location that names one object rather than a directory.
    if (listed === 0 && dir !== '' && !opened.path.endsWith('/') && (await engine.stat(dir))) await check(dir);

    // A store initialised inside this one (its own .s3cryptfs.json) has names this key cannot read:
    // not a failure, it is verified on its own.
    const nested = opened.warnings
      .filter((w) => w.key.endsWith('/' + CONFIG_OBJECT_NAME))
      .map((w) => w.key.slice(0, -CONFIG_OBJECT_NAME.length));
    for (const p of nested) process.stderr.write(`s3cryptfs: skipping nested store s3://${opened.bucket}/${p} (verify it separately)\n`);
    for (const w of opened.warnings) {
      if (nested.some((p) => w.key.startsWith(p))) continue;
      const message = WARNING_TEXT[w.code] ?? w.message;
      failures.push({ what: `s3://${opened.bucket}/${w.key}`, message, code: ExitCode.INTEGRITY });
      await writeOut(`FAILED s3://${opened.bucket}/${w.key}: ${message}\n`);
    }
    say(rt, `verified ${ok} object(s), ${humanSize(bytes)}; ${failures.length} failed`);
    if (failures.length === 0) return ExitCode.OK;
    return failures.some((f) => f.code === ExitCode.INTEGRITY) ? ExitCode.INTEGRITY : failures[0].code;
  },
};
