/**
 * Per-invocation state shared by the commands: resolved settings, logger, the object store and the
 * key source, created lazily and released by close().
 */
import { ObjectStore } from '../store/store.js';
import type { DerivedKeys } from '../format/kdf.js';
import { createKeySource, loadKeys, wipeKeys, type KeySource } from '../keys/index.js';
import type { Args } from './command.js';
import { DEFAULT_CONCURRENCY, getSetting, resolveSettings, type Settings } from './config.js';
import { CliError } from './errors.js';
import { ExitCode } from './exit-codes.js';
import { createLogger, type Logger } from './log.js';

export class Runtime {
  private storeInstance?: ObjectStore;
  private readKeysPromise?: Promise<DerivedKeys[]>;
  private readonly cleanups: (() => unknown)[] = [];
  private readonly interrupt = new AbortController();
  /** Fires on the first SIGINT/SIGTERM; commands stop, abort uploads and clean up. A second signal exits at once. */
  readonly signal: AbortSignal = this.interrupt.signal;
  private readonly onSignal = (sig: NodeJS.Signals) => {
    if (this.interrupt.signal.aborted) process.exit(ExitCode.INTERRUPTED);
    this.log.debug({ signal: sig }, 'interrupted');
    this.interrupt.abort(new CliError(ExitCode.INTERRUPTED, 'interrupted'));
  };

  private constructor(
    readonly args: Args,
    readonly settings: Settings,
    readonly log: Logger,
    readonly env: NodeJS.ProcessEnv,
  ) {}

  static async create(args: Args, env: NodeJS.ProcessEnv = process.env): Promise<Runtime> {
    const settings = await resolveSettings({ argv: args, env, configFlag: args.config as string | undefined });
    const log = createLogger(args.verbose === true, env);
    log.debug({ configFile: settings.configFile, sources: sourcesOf(settings) }, 'settings resolved');
    const rt = new Runtime(args, settings, log, env);
    process.on('SIGINT', rt.onSignal);
    process.on('SIGTERM', rt.onSignal);
    return rt;
  }

  setting<T extends string | number | boolean>(name: Parameters<typeof getSetting>[1]): T | undefined {
    return getSetting<T>(this.settings, name);
  }

  get concurrency(): number {
    return this.setting<number>('concurrency') ?? DEFAULT_CONCURRENCY;
  }

  /** Progress bars: on unless disabled; progress.ts additionally requires a terminal. */
  get progress(): boolean {
    return this.args.quiet !== true && (this.setting<boolean>('progress') ?? true);
  }

  store(): ObjectStore {
    if (this.storeInstance) return this.storeInstance;
    const endpoint = this.setting<string>('endpoint');
    if (endpoint !== undefined) checkEndpoint(endpoint, this.settings.values.endpoint?.source === 'flag');
    const profile = this.setting<string>('profile');
    // The SDK's default credential chain reads AWS_PROFILE when it resolves credentials.
    if (profile !== undefined) process.env.AWS_PROFILE = profile;
    this.storeInstance = new ObjectStore({
      endpoint,
      region: this.setting<string>('region'),
      forcePathStyle: this.setting<boolean>('path-style'),
    });
    this.log.debug({ endpoint: this.storeInstance.endpoint ?? 'AWS', region: this.storeInstance.region }, 'object store');
    return this.storeInstance;
  }

  keySource(): KeySource {
    const source = createKeySource({ ...this.settings.key, env: this.env });
    this.log.debug({ keySource: source.describe() }, 'key source');
    return source;
  }

  /**
   * The --read-key-file keys, derived (loaded once, wiped at close): objects sealed with them can be
   * read, nothing is written with them. A read key file must be a key file or a memkey: URL.
   */
  readKeys(): Promise<DerivedKeys[]> {
    this.readKeysPromise ??= (async () => {
      const out: DerivedKeys[] = [];
      for (const file of this.settings.readKeyFiles.files) {
        const source = createKeySource({ keyFile: file, env: this.env });
        const { keys, keyId } = await loadKeys(source);
        this.log.debug({ keySource: source.describe(), keyId }, 'read key');
        out.push(keys);
        this.onClose(() => wipeKeys(keys));
      }
      return out;
    })();
    return this.readKeysPromise;
  }

  onClose(fn: () => unknown): void {
    this.cleanups.push(fn);
  }

  async close(): Promise<void> {
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
    for (const fn of this.cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        this.log.debug({ err }, 'cleanup failed');
      }
    }
    this.storeInstance?.destroy();
  }
}

function checkEndpoint(endpoint: string, fromFlag: boolean): void {
  let ok = false;
  try {
    const url = new URL(endpoint);
    ok = url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new CliError(fromFlag ? ExitCode.USAGE : ExitCode.CONFIG, `endpoint must be an http:// or https:// URL, got "${endpoint}"`);
  }
}

function sourcesOf(settings: Settings): Record<string, string> {
  return Object.fromEntries(Object.entries(settings.values).map(([k, v]) => [k, v!.source]));
}
