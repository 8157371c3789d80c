/**
 * Settings resolution: command-line flags > environment > config file > defaults.
 *
 * The config file is JSON whose keys are the long option names ("endpoint", "key-file", ...; the
 * camelCase spelling is accepted too). Relative paths in it are relative to the file's directory.
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { KEY_ENV_VAR } from '../keys/env.js';
import { CliError } from './errors.js';
import { ExitCode, oneLine } from './exit-codes.js';

export type Source = 'flag' | 'env' | 'config' | 'default';

type Kind = 'string' | 'path' | 'boolean' | 'integer' | 'size';

interface SettingSpec {
  kind: Kind;
  /** Environment variables, first non-empty wins. */
  env?: string[];
}

/** Every setting that may come from a flag, the environment or the config file. */
export const SETTINGS = {
  endpoint: { kind: 'string', env: ['AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL'] },
  region: { kind: 'string', env: ['AWS_REGION', 'AWS_DEFAULT_REGION'] },
  profile: { kind: 'string', env: ['AWS_PROFILE'] },
  'path-style': { kind: 'boolean' },
  'key-file': { kind: 'path', env: ['S3CRYPTFS_KEY_FILE'] },
  'passphrase-file': { kind: 'path', env: ['S3CRYPTFS_PASSPHRASE_FILE'] },
  concurrency: { kind: 'integer' },
  progress: { kind: 'boolean' },
  cipher: { kind: 'string' },
  'chunk-size': { kind: 'size' },
  'encrypt-names': { kind: 'boolean' },
  'kdf-n': { kind: 'integer' },
  'aws-cse-key-file': { kind: 'path', env: ['S3CRYPTFS_AWS_CSE_KEY_FILE'] },
  'aws-cse-rsa-key': { kind: 'path', env: ['S3CRYPTFS_AWS_CSE_RSA_KEY'] },
  'aws-cse-kms-key-id': { kind: 'string', env: ['S3CRYPTFS_AWS_CSE_KMS_KEY_ID'] },
  'aws-kms-endpoint': { kind: 'string', env: ['AWS_ENDPOINT_URL_KMS'] },
  format: { kind: 'string', env: ['S3CRYPTFS_FORMAT'] },
} as const satisfies Record<string, SettingSpec>;

export type SettingName = keyof typeof SETTINGS;
export type SettingValue = string | number | boolean;

export const DEFAULT_CONCURRENCY = 8;

export interface Resolved<T> {
  value: T;
  source: Source;
}

export interface Settings {
  configFile?: string;
  values: Partial<Record<SettingName, Resolved<SettingValue>>>;
  /** The chosen key source: exactly one of these at the highest level that set any. */
  key: { keyFile?: string; passphraseFile?: string; keyEnv?: string; source?: Source };
  /**
   * Extra keys objects may be read with (--read-key-file, repeatable; key rotation): from the
   * highest level that gives any, like the key.
   */
  readKeyFiles: { files: string[]; source?: Source };
}

/** Read keys: repeatable flag, a comma-separated env list, a string or list in the config file. */
export const READ_KEY_SETTING = 'read-key-file';
export const READ_KEY_ENV_VAR = 'S3CRYPTFS_READ_KEY_FILE';

const KEY_SETTINGS = ['key-file', 'passphrase-file'] as const;

export function camel(name: string): string {
  return name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

const BY_CAMEL = new Map<string, SettingName>(Object.keys(SETTINGS).map((k) => [camel(k), k as SettingName]));

export interface ResolveInput {
  /** Parsed command line (yargs argv); options the user did not give are undefined. */
  argv: Record<string, unknown>;
  env: NodeJS.ProcessEnv;
  /** --config value, if given. */
  configFlag?: string;
}

export async function resolveSettings(input: ResolveInput): Promise<Settings> {
  const { argv, env } = input;
  const configPath = input.configFlag ?? nonEmpty(env.S3CRYPTFS_CONFIG);
  const explicit = configPath !== undefined;
  const file = configPath ?? defaultConfigPath(env);
  const loaded = await loadConfigFile(file, explicit);
  const fromFile = loaded?.values;

  const values: Settings['values'] = {};
  for (const name of Object.keys(SETTINGS) as SettingName[]) {
    const spec: SettingSpec = SETTINGS[name];
    const flag = argv[camel(name)] ?? argv[name];
    if (flag !== undefined) {
      values[name] = { value: coerce(name, spec.kind, flag, 'flag'), source: 'flag' };
      continue;
    }
    const envVar = spec.env?.find((v) => nonEmpty(env[v]) !== undefined);
    if (envVar) {
      values[name] = { value: coerce(name, spec.kind, env[envVar] as string, 'env', envVar), source: 'env' };
      continue;
    }
    if (fromFile && name in fromFile) values[name] = { value: fromFile[name] as SettingValue, source: 'config' };
  }

  // The key is chosen as a group: the highest level that names any key source wins, and that level
  // must name exactly one (checked when the source is created).
  const key: Settings['key'] = {};
  for (const level of ['flag', 'env', 'config'] as const) {
    const keyFile = values['key-file']?.source === level ? (values['key-file'].value as string) : undefined;
    const passphraseFile = values['passphrase-file']?.source === level ? (values['passphrase-file'].value as string) : undefined;
    const keyEnv = level === 'env' && nonEmpty(env[KEY_ENV_VAR]) !== undefined ? KEY_ENV_VAR : undefined;
    if (keyFile || passphraseFile || keyEnv) {
      Object.assign(key, { keyFile, passphraseFile, keyEnv, source: level });
      break;
    }
  }
  for (const k of KEY_SETTINGS) if (values[k] && values[k].source !== key.source) delete values[k];

  let readKeyFiles: Settings['readKeyFiles'] = { files: [] };
  const flag = argv[camel(READ_KEY_SETTING)] ?? argv[READ_KEY_SETTING];
  if (flag !== undefined) {
    const list = Array.isArray(flag) ? flag : [flag];
    readKeyFiles = { files: list.map((v) => coerce(READ_KEY_SETTING, 'path', v, 'flag') as string), source: 'flag' };
  } else if (nonEmpty(env[READ_KEY_ENV_VAR]) !== undefined) {
    const list = (env[READ_KEY_ENV_VAR] as string).split(',').map((v) => v.trim()).filter((v) => v !== '');
    readKeyFiles = { files: list.map((v) => coerce(READ_KEY_SETTING, 'path', v, 'env', READ_KEY_ENV_VAR) as string), source: 'env' };
  } else if (loaded?.readKeyFiles) {
    readKeyFiles = { files: loaded.readKeyFiles, source: 'config' };
  }

  return { configFile: loaded ? file : undefined, values, key, readKeyFiles };
}

export function getSetting<T extends SettingValue>(settings: Settings, name: SettingName): T | undefined {
  return settings.values[name]?.value as T | undefined;
}

/** $XDG_CONFIG_HOME/s3cryptfs/config.json, else ~/.config/s3cryptfs/config.json. */
export function defaultConfigPath(env: NodeJS.ProcessEnv): string {
  const base = nonEmpty(env.XDG_CONFIG_HOME) ?? path.join(nonEmpty(env.HOME) ?? homedir(), '.config');
  return path.join(base, 's3cryptfs', 'config.json');
}

interface ConfigFileValues {
  values: Partial<Record<SettingName, SettingValue>>;
  readKeyFiles?: string[];
}

async function loadConfigFile(file: string, explicit: boolean): Promise<ConfigFileValues | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (!explicit && code === 'ENOENT') return undefined;
    throw new CliError(ExitCode.CONFIG, `config file ${file}: ${code === 'ENOENT' ? 'no such file' : code ?? String(err)}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new CliError(ExitCode.CONFIG, `config file ${file}: not valid JSON (${oneLine(err instanceof Error ? err.message : String(err))})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new CliError(ExitCode.CONFIG, `config file ${file}: expected a JSON object`);
  }
  const out: Partial<Record<SettingName, SettingValue>> = {};
  let readKeyFiles: string[] | undefined;
  const relative = (v: string) => (!path.isAbsolute(v) && !v.includes(':') ? path.resolve(path.dirname(file), expandHome(v)) : v);
  for (const [key, value] of Object.entries(raw)) {
    if (key === READ_KEY_SETTING || key === camel(READ_KEY_SETTING)) {
      const list: unknown[] = Array.isArray(value) ? value : [value];
      readKeyFiles = list.map((v) => relative(coerce(READ_KEY_SETTING, 'path', v, 'config', file) as string));
      continue;
    }
    const name = key in SETTINGS ? (key as SettingName) : BY_CAMEL.get(key);
    if (!name) {
      throw new CliError(ExitCode.CONFIG, `config file ${file}: unknown setting "${key}" (known: ${[...Object.keys(SETTINGS), READ_KEY_SETTING].join(', ')})`);
    }
    const spec: SettingSpec = SETTINGS[name];
    let v = coerce(name, spec.kind, value, 'config', file);
    if (spec.kind === 'path' && typeof v === 'string' && !path.isAbsolute(v) && !v.includes(':')) {
      v = relative(v);
    }
    out[name] = v;
  }
  return { values: out, readKeyFiles };
}

/** Validates a raw value; `where` is shown in messages (env var name or config file path). */
export function coerce(name: string, kind: Kind, raw: unknown, source: Source, where?: string): SettingValue {
  const fail = (what: string): never => {
    const origin = source === 'flag' ? `--${name}` : source === 'env' ? `${where} (--${name})` : `config file ${where}: "${name}"`;
    throw new CliError(source === 'flag' ? ExitCode.USAGE : ExitCode.CONFIG, `${origin}: ${what}`);
  };
  switch (kind) {
    case 'string':
    case 'path': {
      if (typeof raw !== 'string' || raw === '') return fail('expected a non-empty string');
      return kind === 'path' ? expandHome(raw) : raw;
    }
    case 'boolean': {
      if (typeof raw === 'boolean') return raw;
      if (typeof raw === 'string' && /^(1|true|yes|on)$/i.test(raw)) return true;
      if (typeof raw === 'string' && /^(0|false|no|off)$/i.test(raw)) return false;
      return fail('expected true or false');
    }
    case 'integer': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\d+$/.test(raw.trim()) ? Number(raw) : NaN;
      if (!Number.isSafeInteger(n) || n < 1) return fail('expected a positive integer');
      return n;
    }
    case 'size': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' ? parseSize(raw) : NaN;
      if (!Number.isSafeInteger(n) || n < 1) return fail('expected a size in bytes (e.g. 65536, 64K, 1M)');
      return n;
    }
  }
}

/** "65536", "64k", "64K", "64KiB", "1M", "1MiB" -> bytes (binary units). */
export function parseSize(text: string): number {
  const m = /^\s*(\d+)\s*([kmg]?)(i?b)?\s*$/i.exec(text);
  if (!m) return NaN;
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g'];
  return Number(m[1]) * mult;
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(homedir(), p.slice(1)) : p;
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v === '' ? undefined : v;
}
