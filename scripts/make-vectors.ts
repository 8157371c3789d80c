/**
 * Writes test/vectors/format-v1.json: known-answer vectors for the v1 object format, produced by the
 * code in src/format with its randomness replaced by fixed values recorded in the file. Another
 * implementation can check itself against the file alone; see docs/format.md, "Test vectors".
 *
 *   npm run vectors            regenerate the file
 *   npm run vectors -- --check exit 1 if the file differs from what the code produces now
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import {
  ATTRIBUTES_METADATA_KEY, deriveKeys, deriveObjectKeys, encryptName, encryptPath, HEADER_SIZE, IMMUTABLE_END,
  newObjectCipher, ObjectSealer, rewrapHeader, wrapBucketKeys, type BucketKeys, type CipherName,
} from '../src/format/index.js';

const OUT = fileURLToPath(new URL('../test/vectors/format-v1.json', import.meta.url));
const CHUNK_SIZE = 4096;
const SIZES = [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE + 3];
const CIPHERS: CipherName[] = ['chacha20-poly1305', 'aes-256-gcm'];

/** Fixed "random" bytes: SHA-256 of a label, truncated. Only their recorded values matter. */
function fixed(label: string, n: number): Buffer {
  return createHash('sha256').update(`s3cryptfs test vector: ${label}`).digest().subarray(0, n);
}

/** A rand() that hands out `values` in order, checking each length. */
function queued(values: Buffer[]): (n: number) => Buffer {
  const queue = [...values];
  return (n: number) => {
    const next = queue.shift();
    if (!next || next.length !== n) throw new Error(`unexpected rand(${n})`);
    return Buffer.from(next); // a copy: callers may wipe what they are given
  };
}

/** Byte i of every vector plaintext. */
export function vectorPlaintext(length: number): Buffer {
  return Buffer.from(Array.from({ length }, (_, i) => (i * 7 + 3) % 251));
}

export function buildVectors(): object {
  const masterKey = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
  const keys = deriveKeys(masterKey);
  // The bucket keys are random per bucket (drawn by init); fixed here.
  const bucketKeys: BucketKeys = {
    nameKey: Buffer.concat([fixed('name key 0', 32), fixed('name key 1', 32)]),
    attrKey: fixed('attribute key', 32),
  };
  const bucketKeysNonce = fixed('bucket keys nonce', 24);
  const wrappedBucketKeys = wrapBucketKeys(keys, bucketKeys, queued([bucketKeysNonce]));

  const objects = CIPHERS.flatMap((cipher) => SIZES.map((size) => {
    const dataKey = fixed(`data key ${cipher} ${size}`, 32);
    const wrapNonce = fixed(`wrap nonce ${cipher} ${size}`, 24);
    const queue = [dataKey, wrapNonce];
    const rand = (n: number) => {
      const next = queue.shift();
      if (!next || next.length !== n) throw new Error(`unexpected rand(${n})`);
      return Buffer.from(next); // a copy: newObjectCipher wipes the data key it is given
    };
    const oc = newObjectCipher(keys, { cipher, chunkSize: CHUNK_SIZE }, rand);
    const sealer = new ObjectSealer(oc);
    const ciphertext = Buffer.concat([...sealer.push(vectorPlaintext(size)), ...sealer.finish()]);
    const { commitment, contentKey } = deriveObjectKeys(dataKey, oc.header.subarray(0, IMMUTABLE_END));
    return {
      cipher, chunkSize: CHUNK_SIZE, plaintextLength: size,
      dataKey: dataKey.toString('hex'), wrapNonce: wrapNonce.toString('hex'),
      contentKey: contentKey.toString('hex'), commitment: commitment.toString('hex'),
      ciphertext: ciphertext.toString('hex'),
    };
  }));

  const nameList = ['a', 'report.pdf', '.hidden', 'ünïcödé', '日本語', 'x'.repeat(255)];
  const names = nameList.map((plain) => ({ plain, encrypted: encryptName(bucketKeys.nameKey, plain) }));
  const paths = ['docs/2024/report.pdf', 'photos/'].map((plain) => ({ plain, encrypted: encryptPath(bucketKeys.nameKey, plain) }));

  // Attributes use a random nonce in normal operation; here the nonce is fixed and the value built
  // by its definition: base64url(nonce || XChaCha20-Poly1305(attrKey, nonce, aad = object key).encrypt(JSON)).
  const attrCases = [
    { objectKey: `prefix/${encryptPath(bucketKeys.nameKey, 'docs/2024/report.pdf')}`, attributes: { mode: '100644', uid: '1000', gid: '1000', mtime: '1700000000123' } },
    { objectKey: 'plain/name.txt', attributes: { 'content-type': 'text/plain; charset=utf-8' } },
  ];
  const attributes = attrCases.map(({ objectKey, attributes }, i) => {
    const nonce = fixed(`attributes nonce ${i}`, 24);
    const sealed = xchacha20poly1305(bucketKeys.attrKey, nonce, Buffer.from(objectKey, 'utf8')).encrypt(Buffer.from(JSON.stringify(attributes), 'utf8'));
    return { objectKey, attributes, nonce: nonce.toString('hex'), sealed: Buffer.concat([nonce, sealed]).toString('base64url') };
  });

  // Key rotation: the last object's header re-wrapped under a second master key. Its chunks are unchanged.
  const masterKey2 = Buffer.from(Array.from({ length: 32 }, (_, i) => 32 + i));
  const keys2 = deriveKeys(masterKey2);
  const source = objects[objects.length - 1];
  const rewrapNonce = fixed('rewrap nonce', 24);
  const oldHeader = Buffer.from(source.ciphertext, 'hex').subarray(0, HEADER_SIZE);
  const newHeader = rewrapHeader(keys, oldHeader, keys2, queued([rewrapNonce]));
  const bucketKeysNonce2 = fixed('bucket keys nonce 2', 24);
  const rotation = {
    masterKey: masterKey2.toString('hex'),
    derived: { keyId: keys2.keyId.toString('hex'), kek: keys2.kek.toString('hex') },
    object: { cipher: source.cipher, plaintextLength: source.plaintextLength, wrapNonce: rewrapNonce.toString('hex'), header: newHeader.toString('hex') },
    bucketKeysNonce: bucketKeysNonce2.toString('hex'),
    wrappedBucketKeys: wrapBucketKeys(keys2, bucketKeys, queued([bucketKeysNonce2])),
  };

  return {
    description: 's3cryptfs object format v1 known-answer vectors. See docs/format.md. Regenerate with `npm run vectors`.',
    plaintextRule: 'byte i of an object plaintext is (7 * i + 3) mod 251',
    randomness: 'newObjectCipher draws the data key (32 bytes) and then the wrap nonce (24 bytes); both are recorded per object',
    masterKey: masterKey.toString('hex'),
    derived: { keyId: keys.keyId.toString('hex'), kek: keys.kek.toString('hex') },
    bucketKeys: {
      nameKey: bucketKeys.nameKey.toString('hex'), attrKey: bucketKeys.attrKey.toString('hex'),
      nonce: bucketKeysNonce.toString('hex'), wrapped: wrappedBucketKeys,
    },
    objects,
    names,
    paths,
    attributesMetadataKey: `x-amz-meta-${ATTRIBUTES_METADATA_KEY}`,
    attributes,
    rotation,
  };
}

function main(): void {
  const text = JSON.stringify(buildVectors(), null, 2) + '\n';
  if (process.argv.includes('--check')) {
    let current = '';
    try {
      current = readFileSync(OUT, 'utf8');
    } catch {
      // missing file: differs
    }
    if (current !== text) {
      console.error(`${OUT} is out of date; run npm run vectors`);
      process.exit(1);
    }
    console.log(`${OUT} is up to date`);
    return;
  }
  writeFileSync(OUT, text);
  console.log(`wrote ${OUT} (${text.length} bytes)`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
