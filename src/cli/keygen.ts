/** `s3cryptfs keygen --out PATH`: write a new random master key file (mode 0600, never overwrites). */
import { generateKeyFile, keyIdOf } from '../keys/index.js';
import type { KeyEncoding } from '../keys/encoding.js';
import type { CliCommand } from './command.js';
import { writeOut } from './output.js';

export const keygenCommand: CliCommand = {
  command: 'keygen',
  describe: 'Generate a new random master key file',
  builder: (y) =>
    y
      .option('out', { alias: 'o', type: 'string', demandOption: true, requiresArg: true, describe: 'Where to write the key (created with mode 0600; never overwritten)' })
      .option('encoding', { type: 'string', choices: ['hex', 'base64'], default: 'hex', describe: 'Text encoding of the key' })
      .example('$0 keygen --out ~/.config/s3cryptfs/master.key', 'write a key, then pass it as --key-file'),
  async run(args) {
    const out = args.out as string;
    const key = await generateKeyFile(out, args.encoding as KeyEncoding);
    try {
      await writeOut(`wrote ${out} (mode 0600), key id ${keyIdOf(key)}\nkeep a copy somewhere safe: without it the data cannot be decrypted\n`);
    } finally {
      key.fill(0);
    }
  },
};
