import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CaptureError } from '../../../src/adapters/errors.ts';
import { classifyFsError, FileStore, SYNC_AHEAD_BYTES } from '../../../src/adapters/store/file-store.ts';
import type { ObjectWriter } from '../../../src/adapters/store/types.ts';
import { rejection } from '../support/errors.ts';

const META = { sha256: 'a'.repeat(64), objectSha256: 'b'.repeat(64) };
const OPTS = { contentType: 'text/plain' };

function listAll(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort();
}

describe('adapters/store/file-store', () => {
  let base: string;
  let root: string;
  let store: FileStore;

  beforeEach(() => {
    base = mkdtempSync(join(tmpdir(), 'logtail-filestore-'));
    root = join(base, 'root');
    store = new FileStore(pathToFileURL(root).href);
  });
  afterEach(() => rmSync(base, { recursive: true, force: true }));

  async function put(key: string, ...chunks: string[]): Promise<ObjectWriter> {
    const w = await store.create(key, OPTS);
    for (const c of chunks) await w.write(Buffer.from(c));
    return w;
  }

  it('writes an object that appears only on commit, byte-exactly, under a file:// URI', async () => {
    const w = await put('ns/pod/app/0001.log', 'hello ', 'world\n');
    expect(w.uri).to.equal(pathToFileURL(join(root, 'ns/pod/app/0001.log')).href);
    expect(await store.head(w.uri)).to.equal(undefined);
    expect(listAll(join(root, 'ns/pod/app'))).to.have.length(1); // the hidden temp file
    const res = await w.commit(META);
    expect(res).to.deep.equal({ uri: w.uri, size: 12 });
    expect(readFileSync(join(root, 'ns/pod/app/0001.log'), 'utf8')).to.equal('hello world\n');
    // the object and its record for clean-up jobs, nothing else
    expect(listAll(join(root, 'ns/pod/app'))).to.deep.equal(['0001.log', '0001.log.logtail.json']);
    expect(await store.head(w.uri)).to.deep.equal({ size: 12 });
    expect(await store.head('ns/pod/app/0001.log')).to.deep.equal({ size: 12 });
    const chunks: Buffer[] = [];
    for await (const c of await store.read(w.uri)) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).to.equal('hello world\n');
  });

  it('asks for an fsync (syncHint now) every SYNC_AHEAD_BYTES while none runs, so the commit finds little unsynced', async () => {
    const w = await store.create('ns/pod/app/sync.log', { ...OPTS, checkpoints: true });
    const cps = w.checkpoints!;
    expect(cps.syncHint()).to.equal('none');
    const chunk = Buffer.alloc(1 << 20, 0x61);
    for (let i = 0; i < SYNC_AHEAD_BYTES / chunk.length - 1; i++) await w.write(chunk);
    expect(cps.syncHint(), 'below the threshold: the caller decides').to.equal('due');
    await w.write(chunk);
    expect(cps.syncHint(), 'at the threshold').to.equal('now');
    const { durable } = await cps.sync();
    await w.write(chunk);
    // asked for just now (and possibly still running): not again yet
    expect(cps.syncHint()).to.equal('due');
    expect(await durable).to.deep.include({ objectBytes: SYNC_AHEAD_BYTES });
    for (let i = 0; i < SYNC_AHEAD_BYTES / chunk.length - 1; i++) await w.write(chunk);
    expect(cps.syncHint(), 'another SYNC_AHEAD_BYTES since the last sync was asked for').to.equal('now');
    expect((await w.commit(META)).size).to.equal(2 * SYNC_AHEAD_BYTES);
  });

  it('streams many MiB byte-exactly, in order, even when writes are not awaited one by one', async () => {
    const w = await store.create('big.log', OPTS);
    const hash = createHash('sha256');
    const pending: Promise<void>[] = [];
    let total = 0;
    for (let i = 0; i < 400; i++) {
      const c = Buffer.alloc(16 * 1024 + (i % 7), i & 0xff);
      hash.update(c);
      total += c.length;
      pending.push(w.write(c));
    }
    await Promise.all(pending);
    expect((await w.commit(META)).size).to.equal(total);
    const data = readFileSync(join(root, 'big.log'));
    expect(data.length).to.equal(total);
    expect(createHash('sha256').update(data).digest('hex')).to.equal(hash.digest('hex'));
  });

  it('commit writes a record beside the object: checksums, size and labels (the S3 store\'s tags)', async () => {
    const labels = { 'logtail.dev/retention': 'Delete', 'logtail.dev/namespace': 'ci', 'logtail.dev/logtail': 'build-42' };
    const w = await put('ci/build-42/main-0.log', 'abc\n');
    const before = Date.now();
    await w.commit({ ...META, labels });
    const rec = JSON.parse(readFileSync(join(root, 'ci/build-42/main-0.log.logtail.json'), 'utf8')) as Record<string, unknown>;
    expect({ ...rec, committedAt: undefined }).to.deep.equal({ apiVersion: 'logtail.dev/v1alpha1', kind: 'StoredObject', object: 'main-0.log', size: 4, sha256: META.sha256, objectSha256: META.objectSha256, committedAt: undefined, labels });
    expect(Date.parse(rec.committedAt as string)).to.be.within(before - 1000, Date.now());
    // label() rewrites it for an object that exists (an adopted one)
    await store.label(w.uri, { ...META, sha256: 'c'.repeat(64), size: 4 });
    expect((JSON.parse(readFileSync(join(root, 'ci/build-42/main-0.log.logtail.json'), 'utf8')) as { sha256: string }).sha256).to.equal('c'.repeat(64));
    expect(listAll(join(root, 'ci/build-42'))).to.deep.equal(['main-0.log', 'main-0.log.logtail.json']);
  });

  it('refuses a key that would be another object\'s record', async () => {
    const e = await rejection(store.create('ns/x.log.logtail.json', OPTS));
    expect(e.reason).to.equal('BadRequest');
    expect(e.message).to.match(/logtail\.json/);
    const gz = await store.create('ns/x.logtail.json.gz', OPTS);
    await gz.abort();
  });

  it('delete removes a committed object; deleting it again, or a URI outside the root, is handled', async () => {
    const w = await store.create('ns/gone/main-0.log', { contentType: 'text/plain' });
    await w.write(Buffer.from('x'));
    const { uri } = await w.commit(META);
    expect(listAll(join(root, 'ns/gone'))).to.deep.equal(['main-0.log', 'main-0.log.logtail.json']);
    await store.delete(uri);
    expect(await store.head(uri)).to.equal(undefined);
    expect(listAll(join(root, 'ns/gone')), 'its record goes with it').to.deep.equal([]);
    await store.delete(uri);
    const outside = pathToFileURL(join(root, '..', 'elsewhere.log')).href;
    expect(await rejection(store.delete(outside))).to.be.instanceOf(Error);
  });

  it('never replaces an existing object: the second commit of a key fails with KeyExists', async () => {
    const first = await put('k.log', 'first\n');
    const second = await put('k.log', 'second, longer\n');
    await first.commit(META);
    const e = await rejection(second.commit(META));
    expect([e.reason, e.kind]).to.deep.equal(['KeyExists', 'permanent']);
    expect(readFileSync(join(root, 'k.log'), 'utf8')).to.equal('first\n');
    expect(listAll(root)).to.deep.equal(['k.log', 'k.log.logtail.json']); // the loser's temp file is gone
    const third = await put('k.log', 'third\n');
    expect((await rejection(third.commit(META))).reason).to.equal('KeyExists');
    expect(readFileSync(join(root, 'k.log'), 'utf8')).to.equal('first\n');
  });

  it('does not replace a file that appeared at the key while writing', async () => {
    const w = await put('x/y.log', 'ours\n');
    writeFileSync(join(root, 'x/y.log'), 'theirs\n');
    expect((await rejection(w.commit(META))).reason).to.equal('KeyExists');
    expect(readFileSync(join(root, 'x/y.log'), 'utf8')).to.equal('theirs\n');
  });

  it('abort leaves nothing behind, is idempotent, and refuses further writes', async () => {
    const w = await put('a/b.log', 'data');
    await w.abort();
    await w.abort();
    expect(listAll(join(root, 'a'))).to.deep.equal([]);
    expect(await store.head(w.uri)).to.equal(undefined);
    expect((await rejection(w.write(Buffer.from('x')))).reason).to.equal('BadRequest');
    expect((await rejection(w.commit(META))).reason).to.equal('BadRequest');
  });

  it('abort after commit keeps the object', async () => {
    const w = await put('c.log', 'kept');
    await w.commit(META);
    await w.abort();
    expect(readFileSync(join(root, 'c.log'), 'utf8')).to.equal('kept');
  });

  it('refuses keys that would leave the root', async () => {
    const bad = ['../escape.log', 'a/../../escape.log', '/etc/passwd', 'a//b', '', 'a/./b', 'a\\..\\b', 'nul\u0000', 'a/'];
    for (const key of bad) {
      const e = await rejection(store.create(key, OPTS));
      expect(e.reason, JSON.stringify(key)).to.equal('BadRequest');
      expect(e.kind).to.equal('permanent');
    }
    expect(listAll(base)).to.deep.equal([]);
    expect((await rejection(store.read(pathToFileURL(join(base, 'other.log')).href))).reason).to.equal('BadRequest');
    expect((await rejection(store.head('file:///etc/passwd'))).reason).to.equal('BadRequest');
  });

  it('refuses a key that reaches outside through a symlink inside the root', async () => {
    const outside = join(base, 'outside');
    mkdirSync(outside);
    mkdirSync(root);
    symlinkSync(outside, join(root, 'link'));
    const e = await rejection(store.create('link/x.log', OPTS));
    expect(e.reason).to.equal('BadRequest');
    expect(listAll(outside)).to.deep.equal([]);
  });

  it('reports a missing object as ObjectNotFound on read and undefined on head', async () => {
    expect(await store.head('nope.log')).to.equal(undefined);
    const e = await rejection(store.read('nope.log'));
    expect([e.reason, e.kind]).to.deep.equal(['ObjectNotFound', 'permanent']);
  });

  it('classifies file system errors', () => {
    const cases: Array<[string, string, 'transient' | 'permanent']> = [
      ['ENOSPC', 'StoreUnavailable', 'transient'],
      ['EIO', 'StoreUnavailable', 'transient'],
      ['EACCES', 'StoreDenied', 'permanent'],
      ['EROFS', 'StoreDenied', 'permanent'],
      ['ENOTDIR', 'BadRequest', 'permanent'],
      ['ENOENT', 'ObjectNotFound', 'permanent'],
      ['EWHATEVER', 'StoreUnavailable', 'permanent'],
    ];
    for (const [code, reason, kind] of cases) {
      const e = classifyFsError(Object.assign(new Error(code), { code }), 'op');
      expect([e.reason, e.kind], code).to.deep.equal([reason, kind]);
    }
  });

  it('a key whose parent is a file is a permanent error, not a crash', async () => {
    await (await put('f', 'x')).commit(META);
    const e = await rejection(store.create('f/g.log', OPTS));
    expect(e.kind).to.equal('permanent');
  });

  it('normalizes its URL and refuses a relative root', () => {
    expect(new FileStore(root + '/').url).to.equal(pathToFileURL(root).href);
    expect(() => new FileStore('relative/dir')).to.throw(CaptureError);
  });
});
