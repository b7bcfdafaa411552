// `logtail get` hands out only verified bytes (issue 12, item 3): a tampered
// or swapped object writes nothing to stdout or the -o file; compression comes
// from spec.compression, never from the key's suffix; an object outside the
// LogTail's namespace prefix is refused before it is read.
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { FileStore } from '../../../src/adapters/store/file-store.ts';
import type { StoredObject } from '../../../src/core/status.ts';
import { checkObjectUri, readVerified, VerifyError } from '../../../src/cmd/verified-read.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

class Collect extends Writable {
  chunks: Buffer[] = [];
  override _write(chunk: Buffer, _e: BufferEncoding, cb: () => void): void {
    this.chunks.push(chunk);
    cb();
  }
  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

async function rejects(p: Promise<unknown>): Promise<VerifyError> {
  const got = await p.then(
    () => new Error('expected a rejection'),
    (e: unknown) => e,
  );
  expect(got).to.be.instanceOf(VerifyError);
  return got as VerifyError;
}

describe('cmd/verified-read: logtail get prints only verified bytes', () => {
  let root: string;
  let spool: string;
  let outDir: string;
  let store: FileStore;
  // Large enough to span many stream chunks: a streaming reader would have
  // written most of it before reaching the flipped byte at the end.
  const content = Buffer.from(Array.from({ length: 20_000 }, (_, i) => `line ${i} of the build log\n`).join(''));

  function put(key: string, bytes: Buffer): string {
    const path = join(root, key);
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, bytes);
    return pathToFileURL(path).href;
  }

  function stored(uri: string, object: Buffer, text: Buffer): StoredObject {
    return { uri, size: object.length, sha256: sha(text), objectSha256: sha(object) };
  }

  beforeEach(() => {
    const base = mkdtempSync(join(tmpdir(), 'logtail-verified-read-'));
    root = join(base, 'store');
    spool = join(base, 'spool');
    outDir = join(base, 'out');
    for (const d of [root, spool, outDir]) mkdirSync(d);
    store = new FileStore(root);
  });

  it('writes an intact object to stdout and leaves no spool behind', async () => {
    const uri = put('team-a/lt/pod-1/main-0.log', content);
    const out = new Collect();
    const r = await readVerified({ store, object: stored(uri, content, content), compression: 'none', stdout: out, spoolDir: spool });
    expect(out.bytes.equals(content)).to.equal(true);
    expect(r.sha256).to.equal(sha(content));
    expect(readdirSync(spool)).to.deep.equal([]);
  });

  it('prints nothing of a tampered object (one byte flipped at the end) and fails', async () => {
    const uri = put('team-a/lt/pod-1/main-0.log', content);
    const meta = stored(uri, content, content);
    const bad = Buffer.from(content);
    bad[bad.length - 2] = bad[bad.length - 2]! ^ 1;
    writeFileSync(new URL(uri), bad);
    const out = new Collect();
    const err = await rejects(readVerified({ store, object: meta, compression: 'none', stdout: out, spoolDir: spool }));
    expect(err.message).to.match(/checksum mismatch .*nothing was written/);
    expect(out.bytes.length).to.equal(0);
    expect(readdirSync(spool)).to.deep.equal([]);
  });

  it('prints nothing of a swapped object (another capture with its own valid bytes)', async () => {
    const uri = put('team-a/lt/pod-1/main-0.log', content);
    const meta = stored(uri, content, content);
    writeFileSync(new URL(uri), Buffer.from('somebody else\'s log\n'));
    const out = new Collect();
    const err = await rejects(readVerified({ store, object: meta, compression: 'none', stdout: out, spoolDir: spool }));
    expect(err.message).to.match(/size=\d+ .*read size=20/);
    expect(out.bytes.length).to.equal(0);
  });

  it('with -o, renames the file into place only after verification; a mismatch leaves no file and no temp file', async () => {
    const uri = put('team-a/lt/pod-1/main-0.log', content);
    const meta = stored(uri, content, content);
    const dest = join(outDir, 'build.log');
    await readVerified({ store, object: meta, compression: 'none', outFile: dest });
    expect(readFileSync(dest).equals(content)).to.equal(true);
    expect(readdirSync(outDir)).to.deep.equal(['build.log']);

    const bad = Buffer.from(content);
    bad[5] = bad[5]! ^ 1;
    writeFileSync(new URL(uri), bad);
    const dest2 = join(outDir, 'again.log');
    await rejects(readVerified({ store, object: meta, compression: 'none', outFile: dest2 }));
    expect(existsSync(dest2)).to.equal(false);
    expect(readdirSync(outDir)).to.deep.equal(['build.log']);
  });

  it('decompresses when spec.compression is gzip, whatever the key ends with', async () => {
    const gz = gzipSync(content);
    const uri = put('team-a/lt/pod-1/main-0.log', gz); // no .gz suffix
    const out = new Collect();
    await readVerified({ store, object: stored(uri, gz, content), compression: 'gzip', stdout: out, spoolDir: spool });
    expect(out.bytes.equals(content)).to.equal(true);
  });

  it('does not decompress a ".gz" key when spec.compression is none', async () => {
    const gz = gzipSync(content);
    const uri = put('team-a/lt/pod-1/main-0.log.gz', gz);
    const out = new Collect();
    // Uncompressed capture: content and object hashes are both of the stored bytes.
    await readVerified({ store, object: stored(uri, gz, gz), compression: 'none', stdout: out, spoolDir: spool });
    expect(out.bytes.equals(gz)).to.equal(true);
  });

  it('a gzip object whose content hash does not match prints nothing', async () => {
    const gz = gzipSync(content);
    const uri = put('team-a/lt/pod-1/main-0.log.gz', gz);
    const out = new Collect();
    await rejects(readVerified({ store, object: stored(uri, gz, Buffer.from('other')), compression: 'gzip', stdout: out, spoolDir: spool }));
    expect(out.bytes.length).to.equal(0);
  });

  describe('checkObjectUri: the namespace prefix', () => {
    it('with the store root: only STORE/NAMESPACE/…', () => {
      checkObjectUri('s3://logs/prefix/team-a/lt/p/main-0.log', 'team-a', 's3://logs/prefix');
      expect(() => checkObjectUri('s3://logs/prefix/team-b/lt/p/main-0.log', 'team-a', 's3://logs/prefix')).to.throw(VerifyError, /not under the LogTail's namespace prefix s3:\/\/logs\/prefix\/team-a\//);
      expect(() => checkObjectUri('s3://other/prefix/team-a/lt/p/main-0.log', 'team-a', 's3://logs/prefix')).to.throw(VerifyError);
      expect(() => checkObjectUri('s3://logs/prefix/team-a-x/p.log', 'team-a', 's3://logs/prefix')).to.throw(VerifyError);
      checkObjectUri('file:///var/lib/logtail/team-a/lt/x.log', 'team-a', 'file:///var/lib/logtail');
    });

    it('without it: the object must sit in a NAMESPACE/ folder', () => {
      checkObjectUri('s3://logs/prefix/team-a/lt/p/main-0.log', 'team-a');
      expect(() => checkObjectUri('s3://logs/prefix/team-b/lt/p/main-0.log', 'team-a')).to.throw(VerifyError, /not under a "team-a\/" folder/);
      expect(() => checkObjectUri('s3://logs/team-a', 'team-a')).to.throw(VerifyError);
    });

    it('refuses dot segments, other schemes, queries', () => {
      expect(() => checkObjectUri("s3://logs/team-a/../team-b/x.log", "team-a")).to.throw(VerifyError, /dot path segment/);
    expect(() => checkObjectUri("s3://logs/p/team-a/../team-b/x.log", "team-a", "s3://logs/p")).to.throw(VerifyError, /dot path segment/);
      expect(() => checkObjectUri('file:///data/team-a/%2E%2E/team-b/x.log', 'team-a')).to.throw(VerifyError, /dot path segment/);
      expect(() => checkObjectUri('https://logs/team-a/x.log', 'team-a')).to.throw(VerifyError, /only s3:\/\/ and file:\/\//);
      expect(() => checkObjectUri('s3://logs/team-a/x.log?versionId=1', 'team-a')).to.throw(VerifyError, /query/);
    });
  });
});
