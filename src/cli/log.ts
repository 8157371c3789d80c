/** Diagnostic logging (pino, JSON lines on stderr). Off unless --verbose or S3CRYPTFS_DEBUG=1. Never logs key material. */
import { pino, type Logger } from 'pino';

export type { Logger };

export function isDebug(env: NodeJS.ProcessEnv = process.env): boolean {
  return /^(1|true|yes)$/i.test(env.S3CRYPTFS_DEBUG ?? '');
}

export function createLogger(verbose: boolean, env: NodeJS.ProcessEnv = process.env): Logger {
  const enabled = verbose || isDebug(env);
  return pino(
    {
      name: 's3cryptfs',
      level: enabled ? 'debug' : 'silent',
      base: undefined,
      // Belt and braces: these fields must never be logged even if someone passes them in.
      redact: { paths: ['key', 'masterKey', 'passphrase', 'secretAccessKey', '*.key', '*.secretAccessKey'], censor: '[redacted]' },
    },
    pino.destination({ fd: 2, sync: true }),
  );
}
