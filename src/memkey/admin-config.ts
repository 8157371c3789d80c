/**
 * The administrator's memkey config: which server to deliver to and the identity fingerprint
 * pinned for it. JSON, mode 0600 (a writable pin would let someone redirect deliveries):
 *
 *   { "v": 1, "server": "https://host:7431", "fingerprint": "<64 hex>", "keyFile": "...", "ca": "..." }
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, unlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { KeyError } from '../keys/errors.js';
import { readSecretFile } from '../keys/secure-file.js';
import { MemkeyError } from './errors.js';
import { normalizeFingerprint } from './protocol.js';

export interface AdminConfig {
  v: 1;
  server: string;
  fingerprint: string;
  /** The master key file `key send` delivers (written by `key generate` / `key import`). */
  keyFile?: string;
  /** CA certificate (PEM file) for an https:// server with a private certificate. */
  ca?: string;
}

export const ADMIN_CONFIG_ENV = 'S3CRYPTFS_MEMKEY_ADMIN_CONFIG';

function configDir(env: NodeJS.ProcessEnv): string {
  const xdg = env.XDG_CONFIG_HOME;
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(env.HOME || homedir(), '.config'), 's3cryptfs');
}

export function defaultAdminConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return env[ADMIN_CONFIG_ENV] || path.join(configDir(env), 'memkey-admin.json');
}

export function defaultAdminKeyPath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(configDir(env), 'memkey-master.key');
}

export function validateAdminConfig(raw: unknown, where: string): AdminConfig {
  const c = raw as Partial<AdminConfig> | null;
  const bad = (what: string): never => {
    throw new MemkeyError('CONFIG', `${where}: ${what}`);
  };
  if (!c || typeof c !== 'object' || Array.isArray(c)) return bad('not a JSON object');
  if (c.v !== 1) return bad(`unsupported version ${String(c.v)}`);
  if (typeof c.server !== 'string' || !/^https?:\/\//.test(c.server)) return bad('"server" must be an http:// or https:// URL');
  if (typeof c.fingerprint !== 'string') return bad('"fingerprint" is missing');
  const cfg: AdminConfig = { v: 1, server: c.server, fingerprint: normalizeFingerprint(c.fingerprint) };
  if (c.keyFile !== undefined) cfg.keyFile = typeof c.keyFile === 'string' ? c.keyFile : bad('"keyFile" must be a path');
  if (c.ca !== undefined) cfg.ca = typeof c.ca === 'string' ? c.ca : bad('"ca" must be a path');
  return cfg;
}

export async function readAdminConfig(file: string): Promise<AdminConfig> {
  let raw: Buffer;
  try {
    raw = await readSecretFile(file, 'memkey admin config', 64 * 1024);
  } catch (err) {
    if (err instanceof KeyError) {
      const hint = err.code === 'KEY_FILE_MISSING' ? ' (run: s3cryptfs memkey-admin init --server URL --fingerprint HEX)' : '';
      throw new MemkeyError('CONFIG', err.message + hint);
    }
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw.toString('utf8'));
  } catch {
    throw new MemkeyError('CONFIG', `${file}: not valid JSON`);
  }
  return validateAdminConfig(parsed, file);
}

/** Writes the config atomically with mode 0600 (and its directory 0700 if it has to create it). */
export async function writeAdminConfig(file: string, cfg: AdminConfig): Promise<void> {
  const valid = validateAdminConfig(cfg, file);
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.chmod(0o600);
    await handle.writeFile(JSON.stringify(valid, null, 2) + '\n');
    await handle.sync();
  } catch (err) {
    await handle.close();
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await handle.close();
  await rename(tmp, file);
}
