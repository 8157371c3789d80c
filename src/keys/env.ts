/** Master key given (hex or base64) in an environment variable, default S3CRYPTFS_KEY. */
import { decodeKey } from './encoding.js';
import { KeyError } from './errors.js';
import type { KeyContext, KeySource } from './types.js';

export const KEY_ENV_VAR = 'S3CRYPTFS_KEY';

export class EnvKeySource implements KeySource {
  constructor(
    readonly variable: string = KEY_ENV_VAR,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  describe(): string {
    return `environment variable ${this.variable}`;
  }

  async load(_ctx: KeyContext): Promise<Uint8Array> {
    const value = this.env[this.variable];
    if (value === undefined || value.trim() === '') throw new KeyError('NO_KEY_SOURCE', `environment variable ${this.variable} is not set`);
    return decodeKey(value, `environment variable ${this.variable}`);
  }
}
