/**
 * The part of the object store the engine uses. Tests can hand in a subclass or wrapper of the
 * real ObjectStore to inject failures.
 */
import type { ObjectInfo, ObjectStore } from '../store/store.js';

export type EngineStore = Pick<
  ObjectStore,
  | 'head' | 'getRange' | 'getObject' | 'getStream' | 'put' | 'createMultipart' | 'uploadPart'
  | 'completeMultipart' | 'abortMultipart' | 'list' | 'copy' | 'delete' | 'deleteMany'
>;

export type StoreObjectInfo = ObjectInfo;
