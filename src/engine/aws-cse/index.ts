/** AWS S3 Encryption Client objects in the engine (see docs/aws-cse.md). */
export { AwsCse, WRITE_FORMATS, type AwsCseOptions, type CseFacts, type CseObject, type WriteFormat } from './support.js';
export { createKms, type KmsPort, type KmsClientOptions } from './kms.js';
export { loadAwsCseOptions, type AwsCseSettings } from './options.js';
