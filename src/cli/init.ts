/** `s3cryptfs init s3://BUCKET[/PREFIX]`: write the bucket config (cipher, chunk size, key id, kdf). */
import { Engine, hostPreferredCipher } from '../engine/index.js';
import { normalizePrefix } from '../engine/paths.js';
import { DEFAULT_CHUNK_SIZE, newBucketConfig, type ScryptParams } from '../format/config.js';
import { isValidChunkSize, type CipherName } from '../format/header.js';
import { loadKeys, newScryptParams, PassphraseFileSource, wipeKeys } from '../keys/index.js';
import type { CliCommand } from './command.js';
import { CliError } from './errors.js';
import { ExitCode } from './exit-codes.js';
import { INIT_OPTIONS } from './options.js';
import { humanSize } from './output.js';
import { formatS3Url, parseS3Url } from './s3url.js';
import { say } from './say.js';

export const initCommand: CliCommand = {
  command: 'init <location>',
  describe: 'Initialise an encrypted store in s3://BUCKET[/PREFIX]',
  builder: (y) =>
    y
      .positional('location', { type: 'string', describe: 's3://BUCKET[/PREFIX]' })
      .options(INIT_OPTIONS)
      .example('$0 init s3://my-bucket --key-file master.key', 'whole bucket, names encrypted')
      .example('$0 init s3://my-bucket/vault --passphrase-file pass.txt --cipher aes-256-gcm', 'one prefix, passphrase'),
  async run(args, rt) {
    const url = parseS3Url(args.location as string);
    const prefix = normalizePrefix(url.key);
    const cipher = (rt.setting<string>('cipher') ?? hostPreferredCipher()) as CipherName;
    if (cipher !== 'chacha20-poly1305' && cipher !== 'aes-256-gcm') {
      throw new CliError(ExitCode.CONFIG, `unknown cipher "${cipher}" (chacha20-poly1305 or aes-256-gcm)`);
    }
    const chunkSize = rt.setting<number>('chunk-size') ?? DEFAULT_CHUNK_SIZE;
    if (!isValidChunkSize(chunkSize)) {
      throw new CliError(ExitCode.USAGE, `chunk size must be a multiple of 4096 between 4K and 16M, got ${chunkSize}`);
    }
    const encryptNames = rt.setting<boolean>('encrypt-names') ?? true;
    const source = rt.keySource();
    const params: { cipher: CipherName; chunkSize: number; names: 'aes-siv' | 'plain'; kdf?: ScryptParams } = {
      cipher,
      chunkSize,
      names: encryptNames ? 'aes-siv' : 'plain',
    };
    const kdfN = rt.setting<number>('kdf-n');
    if (source instanceof PassphraseFileSource) {
      try {
        params.kdf = newScryptParams({ N: kdfN });
      } catch (err) {
        throw new CliError(ExitCode.USAGE, `--kdf-n: ${(err as Error).message}`);
      }
    } else if (kdfN !== undefined && rt.settings.values['kdf-n']?.source === 'flag') {
      throw new CliError(ExitCode.USAGE, '--kdf-n only applies with --passphrase-file');
    }
    // A passphrase needs the scrypt parameters; the key source only reads config.kdf.
    const { keys, keyId } = await loadKeys(source, { kdf: params.kdf });
    // Fresh random bucket keys (names, attributes), wrapped under this master key.
    const config = newBucketConfig(keys, params);
    wipeKeys(keys);
    await Engine.init(rt.store(), url.bucket, prefix, config);
    say(
      rt,
      `initialised ${formatS3Url(url.bucket, prefix)}: cipher ${cipher}, chunk size ${humanSize(chunkSize)}, ` +
        `names ${encryptNames ? 'encrypted' : 'in plaintext'}, key id ${keyId}` +
        (config.kdf ? ` (passphrase, scrypt N=${config.kdf.N})` : ''),
    );
  },
};
