// Objects as files under a root directory. An object appears atomically and
// never replaces another: bytes go to a temp file beside the target, which is
// then hard-linked to the final name. link(2) fails with EEXIST where
// rename(2) would silently replace, so "no overwrite" is the kernel's check,
// not a racy exists-then-write.
import { randomBytes } from 'node:crypto';
import { link, mkdir, open, realpath, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { SIDECAR_SUFFIX, isSidecarName, sidecarRecord } from '../../core/object-labels.ts';
import { CaptureError, captureError, describeError } from '../errors.ts';
import { assertSafeKey, type Checkpointing, type CommitMeta, type CommitResult, type CreateOptions, type DurableUpload, type ObjectStore, type ObjectWriter, type UploadFacts } from './types.ts';

// Accepted chunks are batched into one writev(2) of about this size: a
// thread-pool round trip per 16 KiB socket chunk would cost more than the
// copy it avoids.
const FLUSH_BYTES = 1024 * 1024;
/**
 * A writer asks to be synced (syncHint `now`) once this much was accepted
 * since the last fsync began and none is running: the disk writes back while
 * the log streams, so the fsync before the commit finds little left to write
 * (for a 200 MiB log at disk speed it was most of the time after the stream).
 */
export const SYNC_AHEAD_BYTES = 16 << 20;

function fsCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function classifyFsError(err: unknown, what: string): CaptureError {
  if (err instanceof CaptureError) return err;
  const code = fsCode(err);
  const msg = `${what}: ${describeError(err)}`;
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT':
    case 'EIO':
    case 'EAGAIN':
    case 'EBUSY':
    case 'EMFILE':
    case 'ENFILE':
    case 'ESTALE':
    case 'ETIMEDOUT':
      return captureError('StoreUnavailable', msg, { cause: err });
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return captureError('StoreDenied', msg, { cause: err });
    case 'ENOTDIR':
    case 'EISDIR':
    case 'ENAMETOOLONG':
      return captureError('BadRequest', msg, { cause: err });
    case 'ENOENT':
      return captureError('ObjectNotFound', msg, { cause: err });
    default:
      return captureError('StoreUnavailable', msg, { cause: err, kind: 'permanent' });
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * The record beside an object (`<object>.logtail.json`): its checksums and
 * labels, for a clean-up job as S3 tags are for a lifecycle rule. Written to
 * a temporary file and renamed over any earlier record of the same object.
 */
async function writeSidecar(objectPath: string, meta: CommitMeta, size: number): Promise<void> {
  const side = objectPath + SIDECAR_SUFFIX;
  const tmp = join(dirname(side), `.${basename(side).slice(0, 100)}.${randomBytes(6).toString('hex')}.tmp`);
  const rec = sidecarRecord({ object: basename(objectPath), size, sha256: meta.sha256, objectSha256: meta.objectSha256, committedAt: new Date(), labels: meta.labels });
  const fh = await open(tmp, 'wx', 0o640);
  try {
    await fh.writeFile(`${JSON.stringify(rec, null, 2)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, side).catch(async (err: unknown) => {
    await unlink(tmp).catch(() => undefined);
    throw err;
  });
}

function isWithin(root: string, p: string): boolean {
  return p.startsWith(root.endsWith(sep) ? root : root + sep);
}

export class FileStore implements ObjectStore {
  readonly url: string;
  readonly root: string;
  private realRoot: Promise<string> | undefined;

  /** `root`: an absolute directory path or a `file:///abs` URL. Created on first write. */
  constructor(root: string) {
    const path = root.startsWith('file:') ? fileURLToPath(root) : root;
    if (!isAbsolute(path)) throw captureError('BadRequest', `file store root must be absolute: ${root}`);
    this.root = resolve(path);
    this.url = pathToFileURL(this.root).href;
  }

  private keyPath(key: string): string {
    const p = join(this.root, ...assertSafeKey(key));
    if (!isWithin(this.root, p)) throw captureError('BadRequest', `refusing object key ${JSON.stringify(key)}: outside ${this.url}`);
    return p;
  }

  private uriPath(uri: string): string {
    if (!uri.startsWith('file:')) return this.keyPath(uri);
    const p = resolve(fileURLToPath(uri));
    if (!isWithin(this.root, p)) throw captureError('BadRequest', `refusing ${uri}: outside ${this.url}`);
    return p;
  }

  // Symlinks inside the root could still lead out of it; compare real paths.
  private async assertRealWithin(p: string): Promise<void> {
    this.realRoot ??= realpath(this.root);
    const [rr, rp] = await Promise.all([this.realRoot, realpath(p)]);
    if (rp !== rr && !isWithin(rr, rp)) throw captureError('BadRequest', `refusing ${p}: resolves outside ${this.url}`);
  }

  async create(key: string, opts: CreateOptions): Promise<ObjectWriter> {
    // An object there would be taken for another object's record.
    if (isSidecarName(key)) throw captureError('BadRequest', `refusing object key ${JSON.stringify(key)}: the file store keeps each object's record under "<object>${SIDECAR_SUFFIX}"`);
    const finalPath = this.keyPath(key);
    const dir = dirname(finalPath);
    const tmpPath = join(dir, `.${basename(finalPath).slice(0, 100)}.${randomBytes(6).toString('hex')}.tmp`);
    let fh: FileHandle;
    try {
      await mkdir(dir, { recursive: true });
      await this.assertRealWithin(dir);
      fh = await open(tmpPath, 'wx', 0o640);
    } catch (err) {
      throw classifyFsError(err, `create ${finalPath}`);
    }
    return new FileWriter(fh, tmpPath, finalPath, 0, opts.checkpoints ?? false);
  }

  /**
   * The temp file a checkpoint names, beside the object. The name comes from
   * status (input): only a name create() could have made is accepted.
   */
  private tempPath(key: string, id: string): string {
    const finalPath = this.keyPath(key);
    const want = `.${basename(finalPath).slice(0, 100)}.`;
    if (!id.startsWith(want) || !/^[0-9a-f]{12}\.tmp$/.test(id.slice(want.length))) {
      throw captureError('BadRequest', `refusing temp file name ${JSON.stringify(id)} for ${finalPath}`, { kind: 'permanent' });
    }
    return join(dirname(finalPath), id);
  }

  async inspectUpload(key: string, u: DurableUpload): Promise<UploadFacts> {
    const p = this.tempPath(key, u.id);
    try {
      await this.assertRealWithin(dirname(p));
      const st = await stat(p);
      return st.isFile() ? { kind: 'file', size: st.size } : { kind: 'gone' };
    } catch (err) {
      if (fsCode(err) === 'ENOENT') return { kind: 'gone' };
      throw classifyFsError(err, `stat ${p}`);
    }
  }

  /** Opens the temp file again and cuts it to what was durable: bytes past it were written after the checkpoint. */
  async continueUpload(key: string, _opts: CreateOptions, u: DurableUpload): Promise<ObjectWriter> {
    const p = this.tempPath(key, u.id);
    let fh: FileHandle | undefined;
    try {
      await this.assertRealWithin(dirname(p));
      fh = await open(p, 'r+');
      await fh.truncate(u.objectBytes);
      await fh.sync();
    } catch (err) {
      await fh?.close().catch(() => undefined);
      throw classifyFsError(err, `continue ${p}`);
    }
    return new FileWriter(fh, p, this.keyPath(key), u.objectBytes, true);
  }

  async discardUpload(key: string, u: DurableUpload): Promise<void> {
    const p = this.tempPath(key, u.id);
    try {
      await this.assertRealWithin(dirname(p));
      await unlink(p);
    } catch (err) {
      if (fsCode(err) === 'ENOENT') return;
      throw classifyFsError(err, `remove ${p}`);
    }
  }

  async read(uri: string): Promise<Readable> {
    const p = this.uriPath(uri);
    try {
      await this.assertRealWithin(p);
      const fh = await open(p, 'r');
      return fh.createReadStream();
    } catch (err) {
      throw classifyFsError(err, `read ${p}`);
    }
  }

  async head(uri: string): Promise<{ size: number } | undefined> {
    const p = this.uriPath(uri);
    try {
      await this.assertRealWithin(p);
      const st = await stat(p);
      return st.isFile() ? { size: st.size } : undefined;
    } catch (err) {
      if (fsCode(err) === 'ENOENT') return undefined;
      throw classifyFsError(err, `stat ${p}`);
    }
  }

  /** Deletes the object, then its record (a retry after a failure in between finds the object gone and removes the record). */
  async delete(uri: string): Promise<void> {
    const p = this.uriPath(uri);
    for (const f of [p, p + SIDECAR_SUFFIX]) {
      try {
        await this.assertRealWithin(f);
        await unlink(f);
      } catch (err) {
        if (fsCode(err) === 'ENOENT') continue;
        throw classifyFsError(err, `delete ${f}`);
      }
    }
  }

  /** Writes the record of an existing object (one adopted after a restart) as commit does. */
  async label(uri: string, meta: CommitMeta & { size: number }): Promise<void> {
    const p = this.uriPath(uri);
    try {
      await this.assertRealWithin(p);
      await writeSidecar(p, meta, meta.size);
      await fsyncDir(dirname(p));
    } catch (err) {
      throw classifyFsError(err, `record ${p}${SIDECAR_SUFFIX} (the object exists)`);
    }
  }
}

type State = 'open' | 'committing' | 'committed' | 'aborted' | 'released';

class FileWriter implements ObjectWriter {
  readonly uri: string;
  readonly checkpoints: Checkpointing | undefined;
  private readonly fh: FileHandle;
  private readonly tmpPath: string;
  private readonly finalPath: string;
  private state: State = 'open';
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private flushed = 0;
  private accepted = 0;
  /** Bytes fsynced (with the temp file's directory entry). */
  private durable = 0;
  private dirSynced = false;
  /** The fsyncs in flight, one after another; closing the file waits for them. */
  private syncing: Promise<unknown> = Promise.resolve();
  private syncsRunning = 0;
  /** `accepted` when the last sync() was asked for. */
  private syncAskedAt = 0;
  private fhClosed = false;
  private broken: CaptureError | undefined;
  // Writes, commit and abort run one after another even if a caller does not await.
  private chain: Promise<unknown> = Promise.resolve();

  /** `start`: bytes already in the temp file (a continued object), durable. */
  constructor(fh: FileHandle, tmpPath: string, finalPath: string, start = 0, checkpoints = false) {
    this.fh = fh;
    this.tmpPath = tmpPath;
    this.finalPath = finalPath;
    this.uri = pathToFileURL(finalPath).href;
    this.flushed = this.accepted = this.durable = this.syncAskedAt = start;
    this.dirSynced = start > 0;
    this.checkpoints = checkpoints ? { mode: 'fsync', syncHint: () => this.syncHint(), sync: () => this.sync(), release: () => this.release() } : undefined;
  }

  /** `now` once SYNC_AHEAD_BYTES were accepted since the last fsync began and none is running; `due` for any unsynced byte. */
  private syncHint(): 'now' | 'due' | 'none' {
    if (this.accepted <= this.durable) return 'none';
    return this.syncsRunning === 0 && this.accepted - this.syncAskedAt >= SYNC_AHEAD_BYTES ? 'now' : 'due';
  }

  /**
   * Writes out what is batched, then fsyncs beside further writes (they go
   * on while the disk catches up): `durable` covers the bytes written up to
   * this call once the fsync is done.
   */
  private async sync(): Promise<{ durable: Promise<DurableUpload | undefined> }> {
    this.syncAskedAt = this.accepted;
    const at = await this.serial(async () => {
      if (this.broken) throw this.broken;
      if (this.state !== 'open') throw captureError('BadRequest', `sync on a ${this.state} writer for ${this.uri}`);
      await this.flush();
      return this.flushed;
    });
    const fsync = async (): Promise<DurableUpload | undefined> => {
      try {
        await this.fh.sync();
        if (!this.dirSynced) {
          // The temp file's own directory entry must survive a crash too.
          await fsyncDir(dirname(this.tmpPath));
          this.dirSynced = true;
        }
      } catch (err) {
        // Fails the next write; `durable` itself never rejects.
        this.broken ??= classifyFsError(err, `sync ${this.tmpPath}`);
        return undefined;
      }
      if (at > this.durable) this.durable = at;
      return at > 0 ? { id: basename(this.tmpPath), objectBytes: at } : undefined;
    };
    this.syncsRunning++;
    const durable = this.syncing.then(fsync).finally(() => this.syncsRunning--);
    this.syncing = durable;
    return { durable };
  }

  private release(): Promise<void> {
    if (this.state !== 'open') return this.chain.then(() => undefined);
    this.state = 'released';
    return this.serial(async () => {
      this.pending = [];
      await this.syncing;
      if (!this.fhClosed) {
        this.fhClosed = true;
        await this.fh.close().catch(() => undefined);
      }
    });
  }

  private serial<T>(op: () => Promise<T>): Promise<T> {
    const p = this.chain.then(op);
    this.chain = p.catch(() => undefined);
    return p;
  }

  private assertOpen(op: string): void {
    if (this.state !== 'open') throw captureError('BadRequest', `${op} on a ${this.state} writer for ${this.uri}`);
  }

  write(chunk: Buffer): Promise<void> {
    try {
      this.assertOpen('write');
    } catch (err) {
      return Promise.reject(err);
    }
    this.accepted += chunk.length;
    return this.serial(async () => {
      if (this.broken) throw this.broken;
      if (this.state !== 'open') throw captureError('BadRequest', `write on a ${this.state} writer for ${this.uri}`);
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      if (this.pendingBytes >= FLUSH_BYTES) await this.flush();
    });
  }

  private async flush(): Promise<void> {
    let bufs = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    try {
      while (bufs.length > 0) {
        const total = bufs.reduce((n, b) => n + b.length, 0);
        const { bytesWritten } = await this.fh.writev(bufs, this.flushed);
        this.flushed += bytesWritten;
        if (bytesWritten >= total) break;
        // Short write: drop what went out and go again with the rest.
        let skip = bytesWritten;
        const rest: Buffer[] = [];
        for (const b of bufs) {
          if (skip >= b.length) {
            skip -= b.length;
            continue;
          }
          rest.push(skip > 0 ? b.subarray(skip) : b);
          skip = 0;
        }
        bufs = rest;
      }
    } catch (err) {
      // Bytes are lost: nothing written to this writer may become an object.
      this.broken = classifyFsError(err, `write ${this.tmpPath}`);
      throw this.broken;
    }
  }

  commit(metaOf: CommitMeta | ((uri: string) => Promise<CommitMeta>)): Promise<CommitResult> {
    try {
      this.assertOpen('commit');
    } catch (err) {
      return Promise.reject(err);
    }
    this.state = 'committing';
    return this.serial(async () => {
      try {
        await this.syncing;
        if (this.broken) throw this.broken;
        await this.flush();
        const st = await this.fh.stat();
        if (st.size !== this.accepted) {
          throw captureError('SizeMismatch', `${this.tmpPath} holds ${st.size} bytes, ${this.accepted} were written`);
        }
        await this.fh.sync();
        this.fhClosed = true;
        await this.fh.close();
        try {
          await link(this.tmpPath, this.finalPath);
        } catch (err) {
          if (fsCode(err) === 'EEXIST') throw captureError('KeyExists', `${this.uri} already exists`, { cause: err });
          throw err;
        }
      } catch (err) {
        await this.discard().catch(() => undefined);
        this.state = 'aborted';
        throw classifyFsError(err, `commit ${this.finalPath}`);
      }
      // Visible from here on: whatever follows, this writer is committed.
      this.state = 'committed';
      try {
        await unlink(this.tmpPath);
        // A continued object's checksums come from reading it back (capture-continuation.ts readBack).
        const meta = typeof metaOf === 'function' ? await metaOf(this.uri) : metaOf;
        // Its record for clean-up jobs (the S3 store's tags); synced with the object's entry.
        await writeSidecar(this.finalPath, meta, this.accepted);
        // The new directory entries are durable only once the directory is synced.
        await fsyncDir(dirname(this.finalPath));
      } catch (err) {
        throw classifyFsError(err, `commit ${this.finalPath} (the object exists; its record or durability is unknown)`);
      }
      return { uri: this.uri, size: this.accepted };
    });
  }

  abort(): Promise<void> {
    if (this.state === 'committed' || this.state === 'aborted' || this.state === 'released') return this.chain.then(() => undefined);
    if (this.state === 'open') this.state = 'aborted';
    // A commit in flight decides for itself; wait for it.
    return this.serial(async () => {
      if (this.state === 'committed') return;
      this.state = 'aborted';
      this.pending = [];
      await this.discard();
    });
  }

  private async discard(): Promise<void> {
    await this.syncing;
    if (!this.fhClosed) {
      this.fhClosed = true;
      await this.fh.close().catch(() => undefined);
    }
    await unlink(this.tmpPath).catch((err: unknown) => {
      if (fsCode(err) !== 'ENOENT') throw classifyFsError(err, `remove ${this.tmpPath}`);
    });
  }
}
