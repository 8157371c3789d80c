/**
 * The node:crypto (OpenSSL) chunk path must produce exactly the bytes of an independent AEAD
 * implementation, @noble/ciphers, in both directions, for both ciphers. The key schedule is
 * cross-checked the same way: noble's HKDF against node's hkdfSync, noble's key wrap against the header.
 */
import t from 'tap';
import { hkdfSync, randomBytes, randomInt } from 'node:crypto';
import { chacha20poly1305, xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { gcm } from '@noble/ciphers/aes.js';
import { chunkNonce, openChunk, sealChunk, CHUNK_NONCE_SIZE } from '../../src/format/chunk.js';
import { deriveKeys, deriveObjectKeys } from '../../src/format/kdf.js';
import { newObjectCipher, openObjectHeader } from '../../src/format/envelope.js';
import { decodeHeader, HEADER_SIZE, type CipherName } from '../../src/format/header.js';
import { TAG_SIZE } from '../../src/format/layout.js';

const CIPHERS: CipherName[] = ['chacha20-poly1305', 'aes-256-gcm'];
const LENGTHS = [0, 1, 15, 16, 17, 4096, 65536, 65537];
const AAD_LENGTHS = [0, 1, HEADER_SIZE + 1, 1000];

function noble(cipher: CipherName, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array) {
  return cipher === 'chacha20-poly1305' ? chacha20poly1305(key, nonce, aad) : gcm(key, nonce, aad);
}

t.test('chunk nonce is 32 zero bits followed by the index as u64 big-endian', async (t) => {
  t.equal(CHUNK_NONCE_SIZE, 12);
  t.equal(chunkNonce(0).toString('hex'), '000000000000000000000000');
  t.equal(chunkNonce(1).toString('hex'), '000000000000000000000001');
  t.equal(chunkNonce(0x01020304).toString('hex'), '000000000000000001020304');
  t.equal(chunkNonce(2 ** 40 + 5).toString('hex'), '000000000000010000000005');
  t.equal(chunkNonce(Number.MAX_SAFE_INTEGER).toString('hex'), '00000000001fffffffffffff');
});

for (const cipher of CIPHERS) {
  t.test(`${cipher}: node:crypto and @noble/ciphers agree byte for byte`, async (t) => {
    for (const len of LENGTHS) {
      for (const aadLen of AAD_LENGTHS) {
        const key = randomBytes(32);
        const index = [0, 1, randomInt(2, 2 ** 31), 2 ** 40 + randomInt(0, 1000)][randomInt(0, 4)];
        const aad = randomBytes(aadLen);
        const plain = randomBytes(len);
        const what = `len=${len} aad=${aadLen} index=${index}`;

        const ours = sealChunk(cipher, key, index, aad, plain);
        const theirs = noble(cipher, key, chunkNonce(index), aad).encrypt(plain);
        t.equal(ours.length, len + TAG_SIZE, `${what}: ciphertext || 16-byte tag`);
        t.ok(ours.equals(theirs), `${what}: identical sealed bytes`);

        // noble seals -> we open
        const opened = openChunk(cipher, key, index, aad, theirs);
        t.ok(opened && opened.equals(plain), `${what}: we open noble's ciphertext`);
        // we seal -> noble opens
        t.ok(Buffer.from(noble(cipher, key, chunkNonce(index), aad).decrypt(ours)).equals(plain), `${what}: noble opens ours`);

        // And both refuse the same forgeries.
        const flipped = Buffer.from(ours);
        flipped[randomInt(0, flipped.length)] ^= 1 << randomInt(0, 8);
        t.equal(openChunk(cipher, key, index, aad, flipped), null, `${what}: flipped bit refused`);
        t.throws(() => noble(cipher, key, chunkNonce(index), aad).decrypt(flipped), `${what}: noble refuses it too`);
        t.equal(openChunk(cipher, key, index + 1, aad, ours), null, `${what}: wrong index refused`);
        const otherAad = Buffer.concat([aad, Buffer.from([0])]);
        t.equal(openChunk(cipher, key, index, otherAad, ours), null, `${what}: wrong AAD refused`);
      }
    }
    t.equal(openChunk(cipher, randomBytes(32), 0, Buffer.alloc(0), randomBytes(TAG_SIZE - 1)), null, 'shorter than a tag');
  });
}

/** Deterministic randomness in the order newObjectCipher asks for it: data key, then wrap nonce. */
function fixedRand(dataKey: Buffer, wrapNonce: Buffer) {
  const queue = [dataKey, wrapNonce];
  return (n: number) => {
    const next = queue.shift();
    if (!next || next.length !== n) throw new Error(`unexpected rand(${n})`);
    return Buffer.from(next);
  };
}

t.test('key derivation: noble HKDF equals node hkdfSync for every label', async (t) => {
  const master = randomBytes(32);
  const keys = deriveKeys(master);
  const node = (ikm: Uint8Array, salt: Uint8Array, info: string, len: number) => Buffer.from(hkdfSync('sha256', ikm, salt, info, len));
  const noSalt = Buffer.alloc(0); // RFC 5869: an absent salt is HashLen zero bytes, the same as an empty one
  t.ok(keys.keyId.equals(node(master, noSalt, 's3cryptfs/v1/key-id', 16)), 'key id');
  t.ok(keys.kek.equals(node(master, noSalt, 's3cryptfs/v1/key-encryption-key', 32)), 'kek');
  t.same(Object.keys(keys).sort(), ['kek', 'keyId'], 'name and attribute keys are per bucket, not derived from the master key');
  const dataKey = randomBytes(32);
  const prefix = randomBytes(12);
  const obj = deriveObjectKeys(dataKey, prefix);
  t.ok(obj.commitment.equals(node(dataKey, prefix, 's3cryptfs/v1/commitment', 32)), 'commitment');
  t.ok(obj.contentKey.equals(node(dataKey, prefix, 's3cryptfs/v1/content-key', 32)), 'content key');
  t.notOk(obj.commitment.equals(obj.contentKey), 'commitment and content key differ');
});

for (const cipher of CIPHERS) {
  t.test(`${cipher}: a whole object rebuilt with noble alone equals ObjectCipher's output`, async (t) => {
    const keys = deriveKeys(randomBytes(32));
    const chunkSize = 4096;
    const dataKey = randomBytes(32);
    const wrapNonce = randomBytes(24);
    const oc = newObjectCipher(keys, { cipher, chunkSize }, fixedRand(dataKey, wrapNonce));
    const header = oc.header;
    t.equal(header.length, HEADER_SIZE);
    const h = decodeHeader(header);
    t.ok(h.wrapNonce.equals(wrapNonce), 'wrap nonce comes from rand');

    // Key wrap: XChaCha20-Poly1305 under the KEK, AAD = header[0..52].
    const unwrapped = xchacha20poly1305(keys.kek, wrapNonce, header.subarray(0, 52)).decrypt(h.wrappedKey);
    t.ok(Buffer.from(unwrapped).equals(dataKey), 'noble unwraps the data key');
    const { commitment, contentKey } = deriveObjectKeys(dataKey, header.subarray(0, 12));
    t.ok(h.commitment.equals(commitment), 'commitment = HKDF(dataKey, header[0..12], commitment label)');

    const plain = randomBytes(2 * chunkSize + 7);
    const pieces = [plain.subarray(0, chunkSize), plain.subarray(chunkSize, 2 * chunkSize), plain.subarray(2 * chunkSize)];
    const opened = openObjectHeader(keys, header);
    pieces.forEach((piece, i) => {
      const final = i === pieces.length - 1;
      const aad = Buffer.concat([header.subarray(0, 12), header.subarray(100, 132), Buffer.from([final ? 1 : 0])]);
      const ours = oc.sealChunk(i, final, piece);
      const theirs = noble(cipher, contentKey, chunkNonce(i), aad).encrypt(piece);
      t.ok(ours.equals(theirs), `chunk ${i}: identical (AAD = header[0..12) || commitment || ${final ? 1 : 0})`);
      t.ok(opened.openChunk(i, pieces.length, theirs).equals(piece), `chunk ${i}: noble-sealed chunk opens`);
    });
  });
}
