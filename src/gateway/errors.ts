/**
 * S3 errors as the gateway answers them: a code, an HTTP status and a message, rendered as the
 * standard S3 error document (<Error><Code/><Message/><Resource/><RequestId/></Error>).
 */
import { xmlDocument, xmlElement } from './xml.js';

export class S3Error extends Error {
  override readonly name = 'S3Error';
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
    /** Extra elements of the error document (e.g. Key, BucketName). */
    readonly extra: Record<string, string> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isS3Error(err: unknown, code?: string): err is S3Error {
  return err instanceof S3Error && (code === undefined || err.code === code);
}

/** The common errors, by code. */
export const Errors = {
  accessDenied: (msg = 'Access Denied') => new S3Error('AccessDenied', 403, msg),
  invalidAccessKeyId: () => new S3Error('InvalidAccessKeyId', 403, 'The AWS Access Key Id you provided does not exist in our records.'),
  signatureDoesNotMatch: (extra: Record<string, string> = {}) =>
    new S3Error('SignatureDoesNotMatch', 403, 'The request signature we calculated does not match the signature you provided. Check your key and signing method.', extra),
  requestTimeTooSkewed: (extra: Record<string, string> = {}) =>
    new S3Error('RequestTimeTooSkewed', 403, 'The difference between the request time and the current time is too large.', extra),
  expiredPresign: () => new S3Error('AccessDenied', 403, 'Request has expired'),
  authorizationHeaderMalformed: (msg: string) => new S3Error('AuthorizationHeaderMalformed', 400, msg),
  authorizationQueryParametersError: (msg: string) => new S3Error('AuthorizationQueryParametersError', 400, msg),
  invalidRequest: (msg: string) => new S3Error('InvalidRequest', 400, msg),
  invalidArgument: (msg: string, extra: Record<string, string> = {}) => new S3Error('InvalidArgument', 400, msg, extra),
  invalidUri: () => new S3Error('InvalidURI', 400, "Couldn't parse the specified URI."),
  malformedXml: (msg = 'The XML you provided was not well-formed or did not validate against our published schema.') => new S3Error('MalformedXML', 400, msg),
  badDigest: (msg = 'The Content-MD5 you specified did not match what we received.') => new S3Error('BadDigest', 400, msg),
  invalidDigest: () => new S3Error('InvalidDigest', 400, 'The Content-MD5 you specified is not valid.'),
  sha256Mismatch: () => new S3Error('XAmzContentSHA256Mismatch', 400, 'The provided \'x-amz-content-sha256\' header does not match what was computed.'),
  incompleteBody: () => new S3Error('IncompleteBody', 400, 'You did not provide the number of bytes specified by the Content-Length HTTP header.'),
  missingContentLength: () => new S3Error('MissingContentLength', 411, 'You must provide the Content-Length HTTP header.'),
  entityTooLarge: (max: number) => new S3Error('EntityTooLarge', 400, 'Your proposed upload exceeds the maximum allowed size', { MaxSizeAllowed: String(max) }),
  entityTooSmall: () => new S3Error('EntityTooSmall', 400, 'Your proposed upload is smaller than the minimum allowed object size.'),
  metadataTooLarge: () => new S3Error('MetadataTooLarge', 400, 'Your metadata headers exceed the maximum allowed metadata size.'),
  keyTooLong: () => new S3Error('KeyTooLongError', 400, 'Your key is too long'),
  noSuchBucket: (bucket: string) => new S3Error('NoSuchBucket', 404, 'The specified bucket does not exist', { BucketName: bucket }),
  noSuchKey: (key: string) => new S3Error('NoSuchKey', 404, 'The specified key does not exist.', { Key: key }),
  noSuchUpload: (uploadId: string) => new S3Error('NoSuchUpload', 404, 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.', { UploadId: uploadId }),
  invalidPart: () => new S3Error('InvalidPart', 400, 'One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part\'s entity tag.'),
  invalidPartOrder: () => new S3Error('InvalidPartOrder', 400, 'The list of parts was not in ascending order. Parts must be ordered by part number.'),
  preconditionFailed: (condition: string) => new S3Error('PreconditionFailed', 412, 'At least one of the pre-conditions you specified did not hold', { Condition: condition }),
  conditionalConflict: () => new S3Error('ConditionalRequestConflict', 409, 'A conflicting conditional operation is currently in progress against this resource. Please try again.'),
  invalidRange: (size: number) => new S3Error('InvalidRange', 416, 'The requested range is not satisfiable', { ActualObjectSize: String(size) }),
  bucketNotEmpty: (bucket: string) => new S3Error('BucketNotEmpty', 409, 'The bucket you tried to delete is not empty', { BucketName: bucket }),
  bucketAlreadyOwnedByYou: (bucket: string) => new S3Error('BucketAlreadyOwnedByYou', 409, 'Your previous request to create the named bucket succeeded and you already own it.', { BucketName: bucket }),
  invalidBucketName: (bucket: string) => new S3Error('InvalidBucketName', 400, 'The specified bucket is not valid.', { BucketName: bucket }),
  methodNotAllowed: () => new S3Error('MethodNotAllowed', 405, 'The specified method is not allowed against this resource.'),
  notImplemented: (what = 'A header or query you provided implies functionality that is not implemented.') => new S3Error('NotImplemented', 501, what),
  internal: (msg = 'We encountered an internal error. Please try again.', cause?: unknown) => new S3Error('InternalError', 500, msg, {}, { cause }),
  serviceUnavailable: (msg = 'Service is unable to handle request.') => new S3Error('ServiceUnavailable', 503, msg),
  slowDown: () => new S3Error('SlowDown', 503, 'Please reduce your request rate.'),
  requestTimeout: () => new S3Error('RequestTimeout', 400, 'Your socket connection to the server was not read from or written to within the timeout period.'),
  invalidObjectState: (msg: string) => new S3Error('InvalidRequest', 400, msg),
};

/** The error document for `err` (without a body for HEAD requests: the caller decides). */
export function errorXml(err: S3Error, resource: string, requestId: string): string {
  const fields: [string, string][] = [
    ['Code', err.code],
    ['Message', err.message],
    ...Object.entries(err.extra),
    ['Resource', resource],
    ['RequestId', requestId],
  ];
  return xmlDocument(xmlElement('Error', fields.map(([k, v]) => xmlElement(k, v))));
}
