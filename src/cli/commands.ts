/** Every command, in the order `--help` lists them. */
import { catCommand } from './cat.js';
import type { CliCommand } from './command.js';
import { demoCommand } from './demo.js';
import { gcCommand } from './gc.js';
import { getCommand } from './get.js';
import { initCommand } from './init.js';
import { keygenCommand } from './keygen.js';
import { lsCommand } from './ls.js';
import { memkeyAdminCommand } from './memkey-admin.js';
import { memkeyServerCommand } from './memkey-server.js';
import { mountCommand } from './mount.js';
import { putCommand } from './put.js';
import { rmCommand } from './rm.js';
import { rotateKeyCommand } from './rotate-key.js';
import { serveS3Command } from './serve-s3.js';
import { statCommand } from './stat.js';
import { statusCommand } from './status.js';
import { verifyCommand } from './verify.js';

export const COMMANDS: CliCommand[] = [
  keygenCommand,
  initCommand,
  putCommand,
  getCommand,
  catCommand,
  lsCommand,
  rmCommand,
  statCommand,
  verifyCommand,
  rotateKeyCommand,
  gcCommand,
  mountCommand,
  statusCommand,
  memkeyServerCommand,
  memkeyAdminCommand,
  serveS3Command,
  demoCommand,
];
