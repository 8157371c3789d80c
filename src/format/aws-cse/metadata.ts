/**
 * Content metadata ("envelope") of the AWS S3 Encryption Client formats V1, V2 and V3, read from S3
 * user metadata (x-amz-meta-*, handed to us without that prefix) and/or an instruction file
 * (`<key>.instruction`, a JSON object). See docs/aws-cse.md for the sources of these rules.
 */
import { CseIntegrityError } from './errors.js';

export const CBC_ALG = 'AES/CBC/PKCS5Padding';
export const GCM_ALG = 'AES/GCM/NoPadding';
/** x-amz-c of V3: the decimal id of ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY (0x0073). */
export const COMMIT_ALG = '115';
export const INSTRUCTION_SUFFIX = '.instruction';

export type ContentAlg = typeof CBC_ALG | typeof GCM_ALG | typeof COMMIT_ALG;
/**
 * 'legacy' is a V1 x-amz-key without x-amz-wrap-alg: AES/ECB/PKCS5Padding for a symmetric master
 * key, RSA PKCS#1 v1.5 for an RSA one.
 */
export type WrapAlg = 'legacy' | 'AESWrap' | 'AES/GCM' | 'RSA-OAEP-SHA1' | 'kms' | 'kms+context';

export interface CseEnvelope {
  version: 1 | 2 | 3;
  contentAlg: ContentAlg;
  wrapAlg: WrapAlg;
  encryptedKey: Buffer;
  /** Content IV: 16 bytes for CBC, 12 for GCM; V3 uses the fixed all-0x01 IV. */
  iv: Buffer;
  /** Material description (raw keys) or KMS encryption context, as stored. */
  matdesc: Record<string, string>;
  /** Authentication tag length in bytes (16 for GCM, 0 for CBC). */
  tagLength: number;
  /** x-amz-unencrypted-content-length, when recorded. */
  plainLength?: number;
  /** V3 only. */
  commitment?: Buffer;
  messageId?: Buffer;
  /** Where the envelope (or, for V3, its key part) was read from. */
  location: 'metadata' | 'instruction-file';
}

/** What object metadata says about an object. */
export type CseDetection =
  | { kind: 'none' }
  | { kind: 'metadata' }
  /** The envelope (or its key part) is in the instruction file. */
  | { kind: 'instruction-file' };

const V1_KEYS = ['x-amz-key'];
const V2_KEYS = ['x-amz-key-v2', 'x-amz-wrap-alg', 'x-amz-cek-alg', 'x-amz-tag-len'];
const V3_KEYS = ['x-amz-3', 'x-amz-c', 'x-amz-d', 'x-amz-i', 'x-amz-w', 'x-amz-m', 'x-amz-t'];
const V3_WRAP: Record<string, WrapAlg> = { '02': 'AES/GCM', '12': 'kms+context', '22': 'RSA-OAEP-SHA1' };
const V2_WRAPS: WrapAlg[] = ['AESWrap', 'AES/GCM', 'RSA-OAEP-SHA1', 'kms', 'kms+context'];
const V3_IV = Buffer.alloc(12, 0x01);
const V3_MESSAGE_ID_BYTES = 28;
const V3_COMMITMENT_BYTES = 28;

/** Metadata map with lower-cased names (S3 lower-cases them; other servers or SDKs may not). */
export function normalizeMetadata(meta: Record<string, string | undefined> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(meta ?? {})) if (typeof v === 'string') out[k.toLowerCase()] = v;
  return out;
}

/**
 * Which format the object metadata announces. Objects whose envelope lives in an instruction file
 * are recognised by the V3 content keys (x-amz-c/d/i) or by x-amz-unencrypted-content-length
 * without a key (what the SDKs leave in the metadata in instruction-file mode).
 */
export function detectCse(metadata: Record<string, string | undefined> | undefined): CseDetection {
  const m = normalizeMetadata(metadata);
  if ('x-amz-key' in m || 'x-amz-key-v2' in m || 'x-amz-3' in m) return { kind: 'metadata' };
  if (('x-amz-c' in m && 'x-amz-d' in m && 'x-amz-i' in m) || 'x-amz-unencrypted-content-length' in m || 'x-amz-crypto-instr-file' in m) {
    return { kind: 'instruction-file' };
  }
  return { kind: 'none' };
}

/** The metadata entries that belong to the CSE envelope (kept when an object is copied). */
export function envelopeEntries(metadata: Record<string, string | undefined> | undefined): Record<string, string> {
  const m = normalizeMetadata(metadata);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(m)) if (k.startsWith('x-amz-')) out[k] = v;
  return out;
}

/** Parses an instruction file body (a JSON object of strings; numbers are accepted as strings). */
export function parseInstructionFile(body: string): Record<string, string> {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch {
    throw new CseIntegrityError('CSE_ENVELOPE_INVALID', 'instruction file is not valid JSON');
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new CseIntegrityError('CSE_ENVELOPE_INVALID', 'instruction file is not a JSON object');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v === 'string') out[k.toLowerCase()] = v;
    else if (typeof v === 'number') out[k.toLowerCase()] = String(v);
  }
  return out;
}

/**
 * Reads the envelope from object metadata and, when the metadata does not hold it, the parsed
 * instruction file. Throws CseIntegrityError for anything malformed or mixed.
 */
export function parseEnvelope(metadata: Record<string, string | undefined>, instruction?: Record<string, string>): CseEnvelope {
  const meta = normalizeMetadata(metadata);
  const inMeta = 'x-amz-key' in meta || 'x-amz-key-v2' in meta || 'x-amz-3' in meta;
  if (!inMeta && !instruction) throw new CseIntegrityError('CSE_ENVELOPE_INVALID', 'the object has no encryption envelope in its metadata and no instruction file');
  // V3 splits the envelope: content keys (c, d, i) always in the metadata, key keys possibly in the file.
  const env: Record<string, string> = inMeta ? { ...meta } : { ...instruction, ...pick(meta, ['x-amz-c', 'x-amz-d', 'x-amz-i', 'x-amz-unencrypted-content-length']) };
  const location = inMeta ? 'metadata' : 'instruction-file';
  const has = (keys: string[]) => keys.some((k) => k in env);
  const versions = [has(V1_KEYS), has(['x-amz-key-v2', 'x-amz-wrap-alg', 'x-amz-cek-alg']), has(V3_KEYS)].filter(Boolean).length;
  if (versions > 1) throw new CseIntegrityError('CSE_ENVELOPE_INVALID', 'the envelope mixes keys of different format versions');
  if ('x-amz-3' in env || 'x-amz-c' in env) return parseV3(env, location);
  if ('x-amz-key-v2' in env) return parseV2(env, location);
  if ('x-amz-key' in env) return parseV1(env, location);
  throw new CseIntegrityError('CSE_ENVELOPE_INVALID', 'the envelope has no encrypted data key');
}

function parseV1(env: Record<string, string>, location: CseEnvelope['location']): CseEnvelope {
  return {
    version: 1,
    contentAlg: CBC_ALG,
    wrapAlg: 'legacy',
    encryptedKey: b64(env, 'x-amz-key'),
    iv: ivOf(b64(env, 'x-amz-iv'), 16),
    matdesc: matdesc(env['x-amz-matdesc']),
    tagLength: 0,
    plainLength: lengthOf(env['x-amz-unencrypted-content-length']),
    location,
  };
}

function parseV2(env: Record<string, string>, location: CseEnvelope['location']): CseEnvelope {
  const cek = required(env, 'x-amz-cek-alg');
  const wrap = required(env, 'x-amz-wrap-alg') as WrapAlg;
  if (cek !== CBC_ALG && cek !== GCM_ALG) throw new CseIntegrityError('CSE_UNSUPPORTED', `content algorithm ${JSON.stringify(cek)} is not supported`);
  if (!V2_WRAPS.includes(wrap)) throw new CseIntegrityError('CSE_UNSUPPORTED', `key wrapping algorithm ${JSON.stringify(wrap)} is not supported`);
  let tagLength = 0;
  if (cek === GCM_ALG) {
    const bits = env['x-amz-tag-len'] ?? '128';
    if (bits !== '128') throw new CseIntegrityError('CSE_UNSUPPORTED', `GCM tag length ${JSON.stringify(bits)} is not supported (only 128)`);
    tagLength = 16;
  } else if ('x-amz-tag-len' in env) {
    throw new CseIntegrityError('CSE_ENVELOPE_INVALID', 'x-amz-tag-len given for a CBC object');
  }
  return {
    version: 2,
    contentAlg: cek,
    wrapAlg: wrap,
    encryptedKey: b64(env, 'x-amz-key-v2'),
    iv: ivOf(b64(env, 'x-amz-iv'), cek === GCM_ALG ? 12 : 16),
    matdesc: matdesc(env['x-amz-matdesc']),
    tagLength,
    plainLength: lengthOf(env['x-amz-unencrypted-content-length']),
    location,
  };
}

function parseV3(env: Record<string, string>, location: CseEnvelope['location']): CseEnvelope {
  const c = required(env, 'x-amz-c');
  if (c !== COMMIT_ALG) throw new CseIntegrityError('CSE_UNSUPPORTED', `V3 content algorithm ${JSON.stringify(c)} is not supported`);
  const w = required(env, 'x-amz-w');
  const wrapAlg = V3_WRAP[w];
  if (!wrapAlg) throw new CseIntegrityError('CSE_UNSUPPORTED', `V3 wrapping algorithm ${JSON.stringify(w)} is not supported`);
  const commitment = b64(env, 'x-amz-d');
  const messageId = b64(env, 'x-amz-i');
  if (commitment.length !== V3_COMMITMENT_BYTES) throw new CseIntegrityError('CSE_ENVELOPE_INVALID', `x-amz-d is ${commitment.length} bytes, expected ${V3_COMMITMENT_BYTES}`);
  if (messageId.length !== V3_MESSAGE_ID_BYTES) throw new CseIntegrityError('CSE_ENVELOPE_INVALID', `x-amz-i is ${messageId.length} bytes, expected ${V3_MESSAGE_ID_BYTES}`);
  const desc = wrapAlg === 'kms+context' ? env['x-amz-t'] : env['x-amz-m'];
  return {
    version: 3,
    contentAlg: COMMIT_ALG,
    wrapAlg,
    encryptedKey: b64(env, 'x-amz-3'),
    iv: V3_IV,
    matdesc: matdesc(desc),
    tagLength: 16,
    plainLength: lengthOf(env['x-amz-unencrypted-content-length']),
    commitment,
    messageId,
    location,
  };
}

export interface V2EnvelopeInput {
  encryptedKey: Buffer;
  iv: Buffer;
  wrapAlg: 'AES/GCM' | 'RSA-OAEP-SHA1' | 'kms+context';
  matdesc: Record<string, string>;
  plainLength?: number;
}

/** Metadata of a V2 AES/GCM object as the SDKs write it (names without the x-amz-meta- prefix). */
export function buildV2Metadata(input: V2EnvelopeInput): Record<string, string> {
  const out: Record<string, string> = {
    'x-amz-key-v2': input.encryptedKey.toString('base64'),
    'x-amz-iv': input.iv.toString('base64'),
    'x-amz-matdesc': JSON.stringify(input.matdesc),
    'x-amz-wrap-alg': input.wrapAlg,
    'x-amz-cek-alg': GCM_ALG,
    'x-amz-tag-len': '128',
  };
  if (input.plainLength !== undefined) out['x-amz-unencrypted-content-length'] = String(input.plainLength);
  return out;
}

/** Plaintext size implied by the ciphertext size (CBC needs the padding, so null there unless recorded). */
export function plainSizeFromCipher(env: CseEnvelope, cipherSize: number): number | null {
  if (env.tagLength > 0) {
    if (cipherSize < env.tagLength) throw new CseIntegrityError('CSE_INVALID_SIZE', `${cipherSize} bytes is shorter than a GCM tag`);
    const size = cipherSize - env.tagLength;
    if (env.plainLength !== undefined && env.plainLength !== size) {
      throw new CseIntegrityError('CSE_INVALID_SIZE', `the object holds ${size} plaintext bytes, its metadata says ${env.plainLength}`);
    }
    return size;
  }
  if (cipherSize === 0 || cipherSize % 16 !== 0) throw new CseIntegrityError('CSE_INVALID_SIZE', `${cipherSize} bytes is not a whole number of CBC blocks`);
  if (env.plainLength !== undefined) {
    if (env.plainLength > cipherSize - 1 || env.plainLength < cipherSize - 16) {
      throw new CseIntegrityError('CSE_INVALID_SIZE', `${cipherSize} CBC bytes cannot hold the recorded ${env.plainLength} plaintext bytes`);
    }
    return env.plainLength;
  }
  return null;
}

function pick(m: Record<string, string>, keys: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of keys) if (k in m) out[k] = m[k];
  return out;
}

function required(env: Record<string, string>, key: string): string {
  const v = env[key];
  if (v === undefined || v === '') throw new CseIntegrityError('CSE_ENVELOPE_INVALID', `the envelope lacks ${key}`);
  return v;
}

function b64(env: Record<string, string>, key: string): Buffer {
  const v = required(env, key).trim();
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(v) || v.length % 4 !== 0) throw new CseIntegrityError('CSE_ENVELOPE_INVALID', `${key} is not base64`);
  return Buffer.from(v, 'base64');
}

function ivOf(iv: Buffer, len: number): Buffer {
  if (iv.length !== len) throw new CseIntegrityError('CSE_ENVELOPE_INVALID', `x-amz-iv is ${iv.length} bytes, expected ${len}`);
  return iv;
}

function lengthOf(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d{1,16}$/.test(v.trim())) throw new CseIntegrityError('CSE_ENVELOPE_INVALID', 'x-amz-unencrypted-content-length is not a number');
  const n = Number(v.trim());
  if (!Number.isSafeInteger(n)) throw new CseIntegrityError('CSE_ENVELOPE_INVALID', 'x-amz-unencrypted-content-length is out of range');
  return n;
}

/**
 * Material description / encryption context JSON. S3 returns non-ASCII metadata MIME-encoded
 * (RFC 2047, "=?UTF-8?B?...?="); such values are decoded first.
 */
function matdesc(raw: string | undefined): Record<string, string> {
  if (raw === undefined || raw === '') return {};
  let text = raw;
  const mime = /^=\?UTF-8\?([BQ])\?(.*)\?=$/i.exec(raw.trim());
  if (mime) text = mime[1].toUpperCase() === 'B' ? Buffer.from(mime[2], 'base64').toString('utf8') : decodeQ(mime[2]);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CseIntegrityError('CSE_ENVELOPE_INVALID', 'the material description is not valid JSON');
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new CseIntegrityError('CSE_ENVELOPE_INVALID', 'the material description is not a JSON object');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(parsed)) {
    if (typeof v !== 'string') throw new CseIntegrityError('CSE_ENVELOPE_INVALID', 'the material description has a non-string value');
    out[k] = v;
  }
  return out;
}

function decodeQ(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '_') bytes.push(0x20);
    else if (s[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(s.slice(i + 1, i + 3))) {
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(s.charCodeAt(i) & 0xff);
  }
  return Buffer.from(bytes).toString('utf8');
}
