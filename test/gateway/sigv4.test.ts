// SigV4 verification and aws-chunked decoding against the examples of the AWS S3 documentation
// (GET with a range, presigned GET, streaming PUT with chunk signatures), plus XML parsing and
// the additional checksums.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import t from 'tap';
import { newChecksummer } from '../../src/gateway/checksums.js';
import { isS3Error } from '../../src/gateway/errors.js';
import { Payload } from '../../src/gateway/payload.js';
import { chunkSignature, verifyRequest, type ClientCredential } from '../../src/gateway/sigv4.js';
import { parseXml, XmlError } from '../../src/gateway/xml.js';

const cred: ClientCredential = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' };
const lookup = (id: string) => (id === cred.accessKeyId ? cred : undefined);
const now = new Date('2013-05-24T00:00:00Z');
const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

function raw(headers: Record<string, string>): string[] {
  return Object.entries(headers).flat();
}

t.test('documented GET object example (header auth, Range signed)', async (t) => {
  const headers = {
    Host: 'examplebucket.s3.amazonaws.com',
    Range: 'bytes=0-9',
    'x-amz-content-sha256': EMPTY,
    'x-amz-date': '20130524T000000Z',
    Authorization: 'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
  };
  const auth = verifyRequest({ method: 'GET', rawPath: '/test.txt', rawQuery: '', rawHeaders: raw(headers) }, { lookup, maxSkewMs: 900_000, now });
  t.equal(auth.credential.accessKeyId, cred.accessKeyId);
  t.same(auth.payload, { kind: 'sha256', hex: EMPTY });
  const bad = { ...headers, Range: 'bytes=0-10' };
  t.throws(() => verifyRequest({ method: 'GET', rawPath: '/test.txt', rawQuery: '', rawHeaders: raw(bad) }, { lookup, maxSkewMs: 900_000, now }), { code: 'SignatureDoesNotMatch' });
  t.throws(() => verifyRequest({ method: 'GET', rawPath: '/test.txt', rawQuery: '', rawHeaders: raw(headers) }, { lookup, maxSkewMs: 900_000, now: new Date('2013-05-24T01:00:00Z') }), { code: 'RequestTimeTooSkewed' });
  t.throws(() => verifyRequest({ method: 'GET', rawPath: '/test.txt', rawQuery: '', rawHeaders: raw({ ...headers, Authorization: headers.Authorization.replace('AKIAIOSFODNN7EXAMPLE', 'AKIAUNKNOWN000000000') }) }, { lookup, maxSkewMs: 900_000, now }), { code: 'InvalidAccessKeyId' });
});

t.test('documented presigned URL example', async (t) => {
  const rawQuery = 'X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404';
  const req = { method: 'GET', rawPath: '/test.txt', rawQuery, rawHeaders: ['Host', 'examplebucket.s3.amazonaws.com'] };
  const auth = verifyRequest(req, { lookup, maxSkewMs: 900_000, now: new Date('2013-05-24T10:00:00Z') });
  t.ok(auth.presigned);
  t.same(auth.payload, { kind: 'unsigned' });
  t.throws(() => verifyRequest(req, { lookup, maxSkewMs: 900_000, now: new Date('2013-05-25T00:00:01Z') }), { code: 'AccessDenied' }, 'expired');
});

t.test('documented streaming PUT (STREAMING-AWS4-HMAC-SHA256-PAYLOAD)', async (t) => {
  const headers = {
    Host: 's3.amazonaws.com',
    'x-amz-date': '20130524T000000Z',
    'x-amz-storage-class': 'REDUCED_REDUNDANCY',
    Authorization: 'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9',
    'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
    'Content-Encoding': 'aws-chunked',
    'x-amz-decoded-content-length': '66560',
    'Content-Length': '66824',
  };
  const auth = verifyRequest({ method: 'PUT', rawPath: '/examplebucket/chunkObject.txt', rawQuery: '', rawHeaders: raw(headers) }, { lookup, maxSkewMs: 900_000, now });
  t.same(auth.payload, { kind: 'streaming', signed: true, trailer: false });
  const sigs = ['ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648', '0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497', 'b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9'];
  const body = (signatures: string[]) => Buffer.concat([
    Buffer.from(`10000;chunk-signature=${signatures[0]}\r\n`), Buffer.alloc(65536, 'a'), Buffer.from('\r\n'),
    Buffer.from(`400;chunk-signature=${signatures[1]}\r\n`), Buffer.alloc(1024, 'a'), Buffer.from('\r\n'),
    Buffer.from(`0;chunk-signature=${signatures[2]}\r\n\r\n`),
  ]);
  t.equal(body(sigs).length, 66824);
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  // Split the body into odd pieces: framing must not depend on how TCP delivers it.
  const pieces = (b: Buffer) => Readable.from([b.subarray(0, 7), b.subarray(7, 70_000), b.subarray(70_000)]);
  const p = new Payload(pieces(body(sigs)), lower, auth, 1 << 30);
  const out = await p.buffer();
  t.equal(out.length, 66560);
  t.ok(out.equals(Buffer.alloc(66560, 'a')));
  const tampered = [sigs[0], sigs[1].replace(/^0/, '1'), sigs[2]];
  await t.rejects(new Payload(pieces(body(tampered)), lower, auth, 1 << 30).buffer(), { code: 'SignatureDoesNotMatch' });
  const wrongData = body(sigs);
  wrongData[200] ^= 1;
  await t.rejects(new Payload(pieces(wrongData), lower, auth, 1 << 30).buffer(), { code: 'SignatureDoesNotMatch' });
  t.equal(chunkSignature(auth, auth.signature, require256(Buffer.alloc(65536, 'a'))), sigs[0]);
  // Small pieces (framing lines split across them), and the chunk data handed on without a copy.
  const whole = body(sigs);
  const small: Buffer[] = [];
  for (let i = 0; i < whole.length; i += 333) small.push(Buffer.from(whole.subarray(i, i + 333)));
  const p2 = new Payload(Readable.from(small), lower, auth, 1 << 30);
  const got: Buffer[] = [];
  for await (const piece of p2) got.push(piece);
  t.ok(Buffer.concat(got).equals(Buffer.alloc(66560, 'a')), 'decoded from 333-byte pieces');
  t.ok(got.every((g) => small.some((s) => s.buffer === g.buffer)), 'every decoded piece is a view of a received piece');
  const tamperedSmall = small.map((b) => Buffer.from(b));
  tamperedSmall[100][5] ^= 1;
  await t.rejects(new Payload(Readable.from(tamperedSmall), lower, auth, 1 << 30).buffer(), { code: 'SignatureDoesNotMatch' }, 'a changed byte in small pieces');
});

t.test('the MD5 is computed only when Content-MD5 was sent or the caller wants it', async (t) => {
  const body = Buffer.from('hello');
  const auth = { payload: { kind: 'sha256', hex: require256(body) } } as never;
  const plain = new Payload(Readable.from([body]), { 'content-length': '5' }, auth, 100);
  await plain.drain();
  t.equal(plain.done.md5, undefined, 'nothing needed it');
  const wanted = new Payload(Readable.from([body]), { 'content-length': '5' }, auth, 100);
  wanted.wantMd5 = true;
  await wanted.drain();
  t.equal(wanted.done.md5?.toString('hex'), createHash('md5').update(body).digest('hex'));
  const declared = new Payload(Readable.from([body]), { 'content-length': '5', 'content-md5': 'XUFAKrxLKna5cZ2REBfFkg==' }, auth, 100);
  await declared.drain();
  t.equal(declared.done.md5?.toString('base64'), 'XUFAKrxLKna5cZ2REBfFkg==', 'Content-MD5: computed and checked');
});

function require256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

t.test('unsigned payload with a trailing checksum', async (t) => {
  const data = Buffer.from('hello trailer world');
  const crc = newChecksummer('crc32');
  crc.update(data);
  const body = Buffer.from(`${data.length.toString(16)}\r\n${data.toString()}\r\n0\r\nx-amz-checksum-crc32:${crc.digest()}\r\n\r\n`);
  const headers = { 'x-amz-decoded-content-length': String(data.length), 'x-amz-trailer': 'x-amz-checksum-crc32', 'content-encoding': 'aws-chunked' };
  const auth = { payload: { kind: 'streaming', signed: false, trailer: true } } as never;
  t.same(await new Payload(Readable.from([body]), headers, auth, 1 << 20).buffer(), data);
  const bad = Buffer.from(body.toString().replace(crc.digest(), 'AAAAAA=='));
  await t.rejects(new Payload(Readable.from([bad]), headers, auth, 1 << 20).buffer(), { code: 'BadDigest' });
  const short = body.subarray(0, 10);
  await t.rejects(new Payload(Readable.from([short]), headers, auth, 1 << 20).buffer(), { code: 'IncompleteBody' });
});

t.test('Content-MD5 and x-amz-content-sha256 are checked against the body', async (t) => {
  const body = Buffer.from('hello');
  const sha = require256(body);
  const auth = (hex: string) => ({ payload: { kind: 'sha256', hex } }) as never;
  const ok = { 'content-length': '5', 'content-md5': 'XUFAKrxLKna5cZ2REBfFkg==' };
  t.same(await new Payload(Readable.from([body]), ok, auth(sha), 100).buffer(), body);
  await t.rejects(new Payload(Readable.from([body]), { ...ok, 'content-md5': 'AAAAAAAAAAAAAAAAAAAAAA==' }, auth(sha), 100).buffer(), { code: 'BadDigest' });
  await t.rejects(new Payload(Readable.from([body]), ok, auth(sha.replace(/^./, '0')), 100).buffer(), { code: 'XAmzContentSHA256Mismatch' });
  t.throws(() => new Payload(Readable.from([body]), { ...ok, 'content-md5': 'nope' }, auth(sha), 100), { code: 'InvalidDigest' });
  t.throws(() => new Payload(Readable.from([body]), ok, auth(sha), 4), { code: 'EntityTooLarge' });
});

t.test('checksum algorithms (check values of "123456789")', async (t) => {
  const want: Record<string, string> = { crc32: 'cbf43926', crc32c: 'e3069283', crc64nvme: 'ae8b14860a799888' };
  for (const [alg, hex] of Object.entries(want)) {
    const c = newChecksummer(alg as 'crc32');
    c.update(Buffer.from('12345'));
    c.update(Buffer.from('6789'));
    t.equal(Buffer.from(c.digest(), 'base64').toString('hex'), hex, alg);
  }
});

t.test('XML parser: well-formedness, entities, text kept verbatim', async (t) => {
  const doc = parseXml('<?xml version="1.0"?>\n<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key> a&amp;b&#x3A;&#58;0001 </Key></Object><Object><Key><![CDATA[<x>]]></Key></Object><!-- c --><Quiet>true</Quiet></Delete>');
  t.equal(doc.name, 'Delete');
  t.same(doc.children.filter((c) => c.name === 'Object').map((o) => o.children[0].text), [' a&b::0001 ', '<x>']);
  for (const bad of ['<a>', '<a></b>', '<a>&bogus;</a>', '<a>x</a><b/>', 'text', '<a b=c/>', '<!DOCTYPE a><a/>', '']) {
    t.throws(() => parseXml(bad), XmlError, JSON.stringify(bad));
  }
});

t.test('errors are S3Errors with codes', async (t) => {
  try {
    verifyRequest({ method: 'GET', rawPath: '/', rawQuery: '', rawHeaders: [] }, { lookup, maxSkewMs: 1 });
    t.fail('should throw');
  } catch (err) {
    t.ok(isS3Error(err, 'AccessDenied'));
  }
});
