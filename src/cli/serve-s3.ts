/**
 * `s3cryptfs serve-s3`: an S3 endpoint in front of encrypted stores. Clients speak plain S3 with
 * their own credentials; the gateway encrypts with the engine and stores ciphertext in the backend
 * with its own credentials. Runs until SIGINT/SIGTERM. See docs/gateway.md.
 */
import type { Options } from 'yargs';
import { GATEWAY_SETTINGS, GatewayConfigError, envName, resolveGatewayConfig, type SettingSpec } from '../gateway/config.js';
import { startGateway } from '../gateway/service.js';
import { createKeySource } from '../keys/index.js';
import type { CliCommand } from './command.js';
import { CliError } from './errors.js';
import { ExitCode } from './exit-codes.js';
import { awsCseOptions } from './options.js';
import { say } from './say.js';

const GROUP = 'Gateway options:';

function gatewayOptions(): Record<string, Options> {
  const out: Record<string, Options> = {
    'gateway-config': {
      type: 'string', group: GROUP, requiresArg: true,
      describe: 'Gateway config file (JSON; keys as the options below with "_", plus "credentials" and "backend") [env: S3CRYPTFS_GATEWAY_CONFIG]',
    },
  };
  for (const [name, spec] of Object.entries(GATEWAY_SETTINGS) as [string, SettingSpec][]) {
    const def = spec.default !== undefined ? `; default: ${String(spec.default)}` : '';
    out[name] = {
      type: spec.kind === 'boolean' ? 'boolean' : 'string',
      group: GROUP,
      requiresArg: spec.kind !== 'boolean',
      describe: `${spec.describe} [env: ${envName(name)}${def}]`,
      ...(spec.choices ? { choices: spec.choices } : {}),
    };
  }
  return out;
}

export const serveS3Command: CliCommand = {
  command: 'serve-s3',
  describe: 'Serve encrypted stores as an S3 endpoint (for S3 clients and Proxmox Backup Server)',
  builder: (y) =>
    y
      .options(gatewayOptions())
      .example('$0 serve-s3 --gateway-config /etc/s3cryptfs/gateway.json', 'run with a config file (see examples/)')
      .example('$0 serve-s3 --http-listen 127.0.0.1:8014 --buckets photos --key-file k.key', 'loopback HTTP; client keys from S3CRYPTFS_GATEWAY_ACCESS_KEY_ID/_SECRET_ACCESS_KEY')
      .epilogue(
        'The backend is the global --endpoint/--region/--path-style (or "backend" in the config file); its credentials come from ' +
          '--backend-access-key-id/--backend-secret-access-key, the config file, or the AWS SDK chain (AWS_ACCESS_KEY_ID, profiles). ' +
          'Client credentials are separate: never the backend\'s.',
      ),
  async run(args, rt) {
    let config;
    try {
      config = await resolveGatewayConfig({
        argv: args,
        env: rt.env,
        file: (args['gateway-config'] as string | undefined) ?? (rt.env.S3CRYPTFS_GATEWAY_CONFIG || undefined),
        backendDefaults: {
          endpoint: rt.setting<string>('endpoint'),
          region: rt.setting<string>('region'),
          pathStyle: rt.setting<boolean>('path-style'),
        },
      });
    } catch (err) {
      if (err instanceof GatewayConfigError) throw new CliError(err.message.startsWith('--') ? ExitCode.USAGE : ExitCode.CONFIG, err.message);
      throw err;
    }
    const keySource = rt.settings.key.source !== undefined || (!config.keyFile && !config.passphraseFile)
      ? rt.keySource()
      : createKeySource({ keyFile: config.keyFile, passphraseFile: config.passphraseFile });
    const profile = rt.setting<string>('profile');
    if (profile !== undefined) process.env.AWS_PROFILE = profile;
    let running;
    try {
      running = await startGateway(config, { keySource, readKeys: await rt.readKeys(), awsCse: await awsCseOptions(rt), log: rt.log });
    } catch (err) {
      if (err instanceof GatewayConfigError) throw new CliError(ExitCode.CONFIG, err.message);
      throw err;
    }
    rt.onClose(() => running.close());
    if (running.https) say(rt, `S3 endpoint (HTTPS): ${running.https.url}`);
    if (running.fingerprint) say(rt, `certificate fingerprint (SHA-256): ${running.fingerprint}`);
    if (running.http) say(rt, `S3 endpoint (HTTP, loopback): ${running.http.url}`);
    if (running.admin) say(rt, `admin: ${running.admin.url}/ (dashboard), /metrics, /healthz, /readyz`);
    say(rt, `buckets: ${config.buckets.map((b) => (b.name === b.backendBucket && !b.prefix ? b.name : `${b.name} -> s3://${b.backendBucket}/${b.prefix}`)).join(', ')}`);
    if (!running.registry.keyLoaded) say(rt, `waiting for the key (${running.registry.keyError ?? 'not loaded yet'}); S3 requests get 503 until then`);
    await new Promise<void>((resolve) => {
      if (rt.signal.aborted) return resolve();
      rt.signal.addEventListener('abort', () => resolve(), { once: true });
    });
    say(rt, 'stopping');
    return ExitCode.OK;
  },
};
