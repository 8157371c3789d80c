/** The AWS S3 Encryption Client formats (V1, V2, V3): pure functions, no I/O. See docs/aws-cse.md. */
export * from './errors.js';
export * from './metadata.js';
export * from './keywrap.js';
export * from './content.js';
