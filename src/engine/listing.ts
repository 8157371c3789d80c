/**
 * Directory listings: one ListObjectsV2 per page, names decrypted, sizes converted, no HEADs.
 * The config object, the root's index object and directory markers are hidden; entries that cannot be ours (undecryptable
 * name, impossible size) are skipped and reported as warnings instead of failing the listing.
 */
import { plaintextSize } from '../format/index.js';
import type { EngineContext, EngineWarning } from './context.js';
import type { EntryInfo, ListPage } from './types.js';

export interface ListOptions {
  /** Everything below the directory instead of one level (dirs then lists directory markers). */
  recursive?: boolean;
  /** nextToken of the previous page. */
  token?: string;
  /** Page size (S3 caps it at 1000). */
  maxKeys?: number;
  /** Overrides the engine's warning callback for this listing. */
  onWarning?: (w: EngineWarning) => void;
}

export async function listPage(ctx: EngineContext, dir: string, opts: ListOptions = {}): Promise<ListPage> {
  const warn = opts.onWarning ?? ctx.warn;
  const prefix = ctx.paths.dirPrefix(dir);
  const page = await ctx.store.list(ctx.bucket, {
    prefix,
    delimiter: opts.recursive ? undefined : '/',
    continuationToken: opts.token,
    maxKeys: opts.maxKeys,
  });
  // AWS S3 Encryption Client objects: plaintext sizes from their metadata, instruction files hidden.
  const cse = ctx.cse ? await ctx.cse.classifyListing(page.objects, (key, message) => warn({ code: 'INVALID_SIZE', key, message })) : null;
  const files: EntryInfo[] = [];
  const dirs: string[] = [];
  const decode = (key: string): string | null => {
    try {
      return ctx.paths.pathOf(key);
    } catch (err) {
      warn({ code: 'BAD_NAME', key, message: `skipping "${key}": not a name encrypted with this key (${(err as Error).message})` });
      return null;
    }
  };
  for (const obj of page.objects) {
    if (obj.key === ctx.paths.configKey || obj.key === ctx.paths.rootIndexKey || obj.key === prefix) continue;
    if (obj.key.endsWith('/')) {
      // A directory marker; only a recursive listing sees markers of subdirectories.
      const path = decode(obj.key);
      if (path !== null) dirs.push(path);
      continue;
    }
    const path = decode(obj.key);
    if (path === null) continue;
    if (cse?.skip.has(obj.key)) continue;
    const size = cse?.sizes.get(obj.key) ?? plaintextSize(obj.size, ctx.config.chunkSize);
    if (size === null) {
      warn({ code: 'INVALID_SIZE', key: obj.key, message: `skipping "${path}": ${obj.size} bytes is not a valid encrypted object size` });
      continue;
    }
    files.push({ path, size, etag: obj.etag, lastModified: obj.lastModified });
  }
  for (const p of page.prefixes) {
    const path = decode(p);
    if (path !== null) dirs.push(path);
  }
  const result: ListPage = { files, dirs };
  if (page.nextContinuationToken) result.nextToken = page.nextContinuationToken;
  return result;
}

export async function* listPages(ctx: EngineContext, dir: string, opts: Omit<ListOptions, 'token'> = {}): AsyncGenerator<ListPage> {
  let token: string | undefined;
  do {
    const page = await listPage(ctx, dir, { ...opts, token });
    yield page;
    token = page.nextToken;
  } while (token);
}
