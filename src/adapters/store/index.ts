import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { captureError } from '../errors.ts';
import { FileStore } from './file-store.ts';
import type { S3Options } from './s3-store.ts';
import { parseS3Url } from './s3-url.ts';
import type { ObjectStore } from './types.ts';

export type { CommitMeta, CommitResult, CreateOptions, ObjectStore, ObjectWriter } from './types.ts';
export { assertSafeKey } from './types.ts';
export { FileStore, classifyFsError } from './file-store.ts';
export type { S3Options } from './s3-store.ts';
export { parseS3Url } from './s3-url.ts';

/**
 * The canonical form of a store location, resolved against `cwd`:
 * `file:///abs/root` (from `file:///abs`, `file://./rel`, `file:rel`, or a bare
 * path) or `s3://bucket[/prefix]` (no trailing slash).
 */
export function normalizeStoreUrl(url: string, cwd: string = process.cwd()): string {
  const u = url.trim();
  if (u.startsWith('s3://')) {
    const { bucket, prefix } = parseS3Url(u);
    return `s3://${bucket}${prefix ? `/${prefix}` : ''}`;
  }
  let path: string;
  if (u.startsWith('file:')) {
    const rest = u.slice('file:'.length);
    if (rest.startsWith('///') || rest.startsWith('//localhost/')) {
      path = fileURLToPath(u);
    } else if (rest.startsWith('//')) {
      // `file://./x` and `file://x/y` are how people write relative paths;
      // as URLs they would name a host.
      path = decodeURIComponent(rest.slice(2));
    } else {
      path = decodeURIComponent(rest);
    }
  } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(u)) {
    throw captureError('BadRequest', `unsupported store URL ${JSON.stringify(url)} (file:// or s3://)`);
  } else {
    path = u;
  }
  if (path === '') throw captureError('BadRequest', `empty store path in ${JSON.stringify(url)}`);
  const abs = isAbsolute(path) ? resolve(path) : resolve(cwd, path);
  return pathToFileURL(abs).href;
}

/**
 * The store a URL names. The S3 store (and with it the AWS SDK) is loaded only
 * for an s3:// URL: a file-store operator never pays for it.
 */
export async function storeFromUrl(url: string, opts: S3Options = {}): Promise<ObjectStore> {
  const normalized = normalizeStoreUrl(url);
  if (normalized.startsWith('s3://')) {
    const { S3Store } = await import('./s3-store.ts');
    return new S3Store(normalized, opts);
  }
  return new FileStore(normalized);
}
