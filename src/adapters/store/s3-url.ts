// The s3:// URL grammar, apart from the S3 store so that parsing a store URL
// does not load the AWS SDK (~30 MiB of RSS) in a process that never uses it.
import { captureError } from '../errors.ts';
import { assertSafeKey } from './types.ts';

const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** Splits `s3://bucket[/prefix]`, validating both parts. */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)\/*(.*?)\/*$/.exec(url);
  const bucket = m?.[1] ?? '';
  if (!BUCKET_RE.test(bucket)) throw captureError('BadRequest', `not an s3://bucket[/prefix] URL with a valid bucket name: ${url}`);
  const prefix = m?.[2] ?? '';
  if (prefix !== '') assertSafeKey(prefix);
  return { bucket, prefix };
}
