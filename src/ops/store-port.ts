/** The part of the object store the operations in src/ops use (tests may hand in a wrapper). */
import type { ObjectStore } from '../store/store.js';

export type OpsStore = Pick<
  ObjectStore,
  | 'head' | 'getRange' | 'getObject' | 'getStream' | 'put' | 'list' | 'listAll' | 'createMultipart' | 'uploadPart'
  | 'uploadPartCopy' | 'completeMultipart' | 'abortMultipart' | 'listMultipartUploads'
> & { readonly stats: ObjectStore['stats'] };
