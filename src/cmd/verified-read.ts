// Reads a captured object back for `logtail get` and hands out its bytes only
// after they are verified: the object is spooled to a private temporary file
// while its sha256 is computed, decompressed (when the LogTail's
// spec.compression says so) into a second file while the content's sha256 is
// computed, and only when both match the LogTail's status (and the size too)
// is anything written to the destination. A corrupted or swapped object
// therefore never reaches stdout or the output file, not even in part.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { type Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import type { ObjectStore } from '../adapters/store/index.ts';
import type { StoredObject } from '../core/status.ts';

export class VerifyError extends Error {}

export type Compression = 'none' | 'gzip';

export interface VerifiedReadOptions {
  store: ObjectStore;
  object: StoredObject;
  /** From the LogTail's spec, never from the key's suffix. */
  compression: Compression;
  /** Destination file (written beside it, renamed into place once verified); undefined: `stdout`. */
  outFile?: string;
  stdout?: Writable;
  /** Where the stdout spool lives; default the OS temp directory. */
  spoolDir?: string;
}

function hashTap(h: ReturnType<typeof createHash>, counter: { n: number }): Transform {
  return new Transform({
    transform(chunk: Buffer, _e, cb) {
      h.update(chunk);
      counter.n += chunk.length;
      cb(null, chunk);
    },
  });
}

/** Refuses an object URI that is not under `<store root>/<namespace>/` (or, without a known root, has no `<namespace>` folder). */
export function checkObjectUri(uri: string, namespace: string, storeRoot?: string): void {
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    throw new VerifyError(`refusing object URI ${JSON.stringify(uri)}: not a URL`);
  }
  if (u.protocol !== 's3:' && u.protocol !== 'file:') throw new VerifyError(`refusing object URI ${uri}: only s3:// and file:// objects are read`);
  if (u.search || u.hash) throw new VerifyError(`refusing object URI ${uri}: has a query or fragment`);
  // The raw text, not u.pathname: URL parsing resolves "..", which would hide it.
  const rawPath = uri.slice(uri.indexOf('//') + 2).replace(/^[^/]*/, '');
  const segments = rawPath.split('/').slice(1).map((s) => decodeURIComponent(s));
  if (segments.some((s) => s === '' || s === '.' || s === '..')) throw new VerifyError(`refusing object URI ${uri}: empty or dot path segment`);
  if (storeRoot !== undefined) {
    const root = storeRoot.replace(/\/+$/, '');
    const want = `${root}/${encodeURIComponent(namespace)}/`;
    if (!uri.startsWith(want)) throw new VerifyError(`refusing object URI ${uri}: not under the LogTail's namespace prefix ${want}`);
    return;
  }
  if (!segments.slice(0, -1).includes(namespace)) {
    throw new VerifyError(`refusing object URI ${uri}: not under a "${namespace}/" folder, the LogTail's namespace prefix`);
  }
}

/**
 * Spools, verifies, then writes the object's content to `outFile` or stdout.
 * Throws VerifyError (having written nothing) on any mismatch.
 */
export async function readVerified(o: VerifiedReadOptions): Promise<{ sha256: string; bytes: number }> {
  const spoolParent = o.outFile ? dirname(resolve(o.outFile)) : (o.spoolDir ?? tmpdir());
  // mkdtemp makes a 0700 directory: the spooled log is not readable by others.
  const spool = await mkdtemp(join(spoolParent, `.logtail-get-${o.outFile ? basename(o.outFile) + '-' : ''}`));
  try {
    const rawPath = join(spool, 'object');
    const objectHash = createHash('sha256');
    const rawCount = { n: 0 };
    let body: Readable;
    try {
      body = await o.store.read(o.object.uri);
    } catch (err) {
      throw new VerifyError(`object ${o.object.uri} could not be read: ${(err as Error).message}`);
    }
    const contentHash = createHash('sha256');
    const contentCount = { n: 0 };
    const stages: Transform[] = [hashTap(objectHash, rawCount)];
    // Uncompressed: the content is the object, hash it on the same pass.
    if (o.compression === 'none') stages.push(hashTap(contentHash, contentCount));
    await pipeline([body, ...stages, createWriteStream(rawPath, { mode: 0o600, flags: 'wx' })]);
    const gotObject = objectHash.digest('hex');
    if (rawCount.n !== o.object.size || gotObject !== o.object.objectSha256) {
      throw new VerifyError(
        `checksum mismatch for ${o.object.uri}: status says size=${o.object.size} objectSha256=${o.object.objectSha256}, read size=${rawCount.n} objectSha256=${gotObject}; nothing was written`,
      );
    }
    let contentPath = rawPath;
    if (o.compression === 'gzip') {
      contentPath = join(spool, 'content');
      try {
        await pipeline(createReadStream(rawPath), createGunzip(), hashTap(contentHash, contentCount), createWriteStream(contentPath, { mode: 0o600, flags: 'wx' }));
      } catch (err) {
        throw new VerifyError(`${o.object.uri} does not decompress as gzip (spec.compression is gzip): ${(err as Error).message}; nothing was written`);
      }
    }
    const gotContent = contentHash.digest('hex');
    if (gotContent !== o.object.sha256) {
      throw new VerifyError(`checksum mismatch for ${o.object.uri}: status says sha256=${o.object.sha256}, read sha256=${gotContent}; nothing was written`);
    }
    if (o.outFile) {
      // Same directory, so rename(2) is atomic: the file appears whole and verified, or not at all.
      const final = join(dirname(contentPath), `ready-${randomBytes(4).toString('hex')}`);
      await rename(contentPath, final);
      await rename(final, resolve(o.outFile));
    } else {
      await pipeline(createReadStream(contentPath), o.stdout ?? process.stdout);
    }
    return { sha256: gotContent, bytes: contentCount.n };
  } finally {
    await rm(spool, { recursive: true, force: true });
  }
}
