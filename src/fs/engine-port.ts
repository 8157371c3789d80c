/** The part of the engine the filesystem uses (tests may wrap it to inject failures). */
import type { Engine } from '../engine/index.js';

export type FsEngine = Pick<
  Engine,
  | 'stat'
  | 'openReader'
  | 'createWriter'
  | 'putBuffer'
  | 'list'
  | 'listAll'
  | 'dirExists'
  | 'mkdirMarker'
  | 'readDirObject'
  | 'dirAttributes'
  | 'setDirAttributes'
  | 'writeDirIndex'
  | 'removeDirMarker'
  | 'copy'
  | 'rename'
  | 'delete'
  | 'deleteMany'
  | 'setAttributes'
  | 'objectKey'
> & { readonly config: { chunkSize: number } };
