/** Store errors seen while reading an object, in the engine's terms. */
import { isStoreError } from '../store/errors.js';
import { EngineError } from './errors.js';

export function mapReadError(err: unknown, path: string): unknown {
  if (isStoreError(err, 'PreconditionFailed')) {
    return new EngineError('OBJECT_CHANGED', `"${path}" was replaced while it was being read`, { cause: err });
  }
  if (isStoreError(err, 'NoSuchKey')) {
    return new EngineError('NOT_FOUND', `no such file: "${path}"`, { cause: err });
  }
  return err;
}
