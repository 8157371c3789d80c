// The real AWS SDKs the interop tests drive: the Ruby SDK (Debian's ruby-aws-sdk-s3) and the Go
// SDK's s3crypto package (Debian's golang-github-aws-aws-sdk-go-dev, built offline in GOPATH mode).
// Tests skip, saying why, when one is not installed (scripts/test.sh installs both).
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { access, mkdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const RUBY_SCRIPT = path.join(HERE, '..', 'fixtures', 'ruby-sdk.rb');
const GO_SOURCE = path.join(HERE, '..', 'fixtures', 'go', 's3crypto-tool.go');
const GOPATH = '/usr/share/gocode';

export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 300_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 127) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

/** null when the Ruby SDK can be used, else why not. */
export async function rubyMissing(): Promise<string | null> {
  const r = await run('ruby', ['-e', "require 'aws-sdk-s3'; require 'aws-sdk-kms'; print Aws::S3::EncryptionV2::Client"]);
  return r.code === 0 ? null : `Ruby AWS SDK not available (apt-get install ruby-aws-sdk-s3): ${r.stderr.trim().split('\n')[0] ?? r.code}`;
}

export interface RubyItem {
  op: 'put' | 'get';
  mode: string;
  key: string;
  file: string;
}

export interface RubySpec {
  endpoint: string;
  kms_endpoint?: string;
  bucket: string;
  aes_key_file?: string;
  rsa_key_file?: string;
  kms_key_id?: string;
  items: RubyItem[];
}

/** Runs the Ruby fixture; one result per item. */
export async function rubySdk(dir: string, spec: RubySpec): Promise<{ key: string; ok: boolean; error?: string }[]> {
  const specFile = path.join(dir, `ruby-spec-${randomBytes(4).toString('hex')}.json`);
  await writeFile(specFile, JSON.stringify(spec));
  const r = await run('ruby', [RUBY_SCRIPT, specFile]);
  if (r.code !== 0) throw new Error(`ruby fixture failed (${r.code}): ${r.stderr || r.stdout}`);
  return r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { key: string; ok: boolean; error?: string });
}

/** Builds the Go fixture once per source version (cached in the temp dir); null + reason when Go or the SDK is missing. */
export async function goTool(): Promise<{ bin: string } | { missing: string }> {
  const source = await readFile(GO_SOURCE);
  const hash = createHash('sha256').update(source).digest('hex').slice(0, 12);
  const dir = path.join(tmpdir(), 's3cryptfs-go-fixture');
  const bin = path.join(dir, `s3crypto-tool-${hash}`);
  try {
    await access(bin);
    return { bin };
  } catch {
    // build below
  }
  try {
    await access(path.join(GOPATH, 'src/github.com/aws/aws-sdk-go/service/s3/s3crypto'));
  } catch {
    return { missing: 'Go AWS SDK not available (apt-get install golang-go golang-github-aws-aws-sdk-go-dev)' };
  }
  await mkdir(dir, { recursive: true });
  const env = { ...process.env, GO111MODULE: 'off', GOPATH, GOFLAGS: '', GOCACHE: path.join(dir, 'cache'), CGO_ENABLED: '0' };
  const r = await run('go', ['build', '-o', bin, GO_SOURCE], env);
  if (r.code !== 0) return { missing: `Go fixture did not build (${r.code}): ${(r.stderr || r.stdout).trim().slice(0, 400)}` };
  return { bin };
}

export interface KeyFiles {
  aesKey: Buffer;
  aesKeyFile: string;
  rsaKeyFile: string;
}

export async function makeKeyFiles(dir: string): Promise<KeyFiles> {
  const aesKey = randomBytes(32);
  const aesKeyFile = path.join(dir, 'aws-cse-aes.key');
  await writeFile(aesKeyFile, aesKey, { mode: 0o600 });
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const rsaKeyFile = path.join(dir, 'aws-cse-rsa.pem');
  await writeFile(rsaKeyFile, privateKey.export({ type: 'pkcs1', format: 'pem' }), { mode: 0o600 });
  return { aesKey, aesKeyFile, rsaKeyFile };
}
