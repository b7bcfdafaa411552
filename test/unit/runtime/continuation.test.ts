// The store side of continuation on the real file store: a gzip object made
// durable at a member boundary, abandoned with bytes past that boundary,
// continued by a "later process" (new store, new sink) and committed: the
// object is one valid gzip file holding exactly the content up to the
// boundary plus what the later process wrote.
import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { FileStore } from '../../../src/adapters/store/file-store.ts';
import type { DurableUpload } from '../../../src/adapters/store/types.ts';
import { ContentSink } from '../../../src/runtime/content-sink.ts';

const OPTS = { contentType: 'text/plain', contentEncoding: 'gzip', checkpoints: true };

describe('runtime/continuation on the file store', () => {
  let root: string;
  beforeEach(() => (root = mkdtempSync(join(tmpdir(), 'logtail-cont-'))));
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  for (const compression of ['gzip', 'none'] as const) {
    it(`continues a ${compression} object after its durable bytes and drops what came after them`, async () => {
      const opts = { ...OPTS, contentEncoding: compression === 'gzip' ? 'gzip' : undefined };
      const first = Buffer.from('line one\nline two\n'.repeat(500));
      // Over the writer's 1 MiB batch even compressed: it reaches the file.
      const lost = Buffer.from(`${randomBytes(1_200_000).toString('base64')}\n`);
      const second = Buffer.from('line three\n'.repeat(700));
      // Process 1: writes, makes `first` durable, writes more, dies (its writer released, not committed).
      const store1 = new FileStore(root);
      const w1 = await store1.create('ns/p/c-0.log', opts);
      const s1 = new ContentSink(w1, compression);
      await s1.write(first);
      await s1.endMember();
      expect(w1.checkpoints!.syncHint()).to.equal('due');
      const durable = (await (await w1.checkpoints!.sync()).durable) as DurableUpload;
      expect(durable.objectBytes).to.equal(s1.objectBytes);
      await s1.write(lost);
      await s1.endMember();
      await w1.checkpoints!.release();
      const tmp = readdirSync(join(root, 'ns', 'p')).find((n) => n.endsWith('.tmp'))!;
      expect(tmp).to.equal(durable.id);
      expect(statSync(join(root, 'ns', 'p', tmp)).size).to.be.greaterThan(durable.objectBytes);
      // Process 2: asks the store, continues, writes, commits.
      const store2 = new FileStore(root);
      expect(await store2.inspectUpload('ns/p/c-0.log', durable)).to.deep.equal({ kind: 'file', size: statSync(join(root, 'ns', 'p', tmp)).size });
      const w2 = await store2.continueUpload('ns/p/c-0.log', opts, durable);
      const s2 = new ContentSink(w2, compression, { bytes: first.length, objectBytes: durable.objectBytes });
      expect(s2.partial).to.equal(true);
      await s2.write(second);
      const digest = await s2.finish();
      expect(digest.bytes).to.equal(first.length + second.length);
      const res = await w2.commit(async () => ({ sha256: 'x', objectSha256: 'y' }));
      expect(res.size).to.equal(digest.objectBytes);
      const raw = readFileSync(join(root, 'ns', 'p', 'c-0.log'));
      const content = compression === 'gzip' ? gunzipSync(raw) : raw;
      expect(content.equals(Buffer.concat([first, second]))).to.equal(true);
      expect(createHash('sha256').update(raw).digest('hex')).not.to.equal(digest.objectSha256); // partial: only the new bytes were hashed
      expect(readdirSync(join(root, 'ns', 'p'))).to.deep.equal(['c-0.log']);
    });
  }

  it('reports a missing temp file as gone and removes one on discard', async () => {
    const store = new FileStore(root);
    const w = await store.create('a/b.log', OPTS);
    await w.write(Buffer.from('x\n'));
    const d = (await (await w.checkpoints!.sync()).durable)!;
    await w.checkpoints!.release();
    await store.discardUpload('a/b.log', d);
    expect(await store.inspectUpload('a/b.log', d)).to.deep.equal({ kind: 'gone' });
    await store.discardUpload('a/b.log', d); // already gone: fine
    expect(readdirSync(join(root, 'a'))).to.deep.equal([]);
  });

  it('refuses a temp file name create() could not have made (status is input)', async () => {
    const store = new FileStore(root);
    for (const id of ['../../etc/passwd', '.b.log.0123456789ab.tmp/../x', 'b.log', '.b.log.xyz.tmp', '.other.log.0123456789ab.tmp']) {
      const err = await store.inspectUpload('a/b.log', { id, objectBytes: 0 }).then(() => undefined, (e: unknown) => e as { reason?: string });
      expect(err?.reason, id).to.equal('BadRequest');
    }
  });

  it('an empty gzip log is still a valid gzip file', async () => {
    const store = new FileStore(root);
    const w = await store.create('e.log', OPTS);
    const s = new ContentSink(w, 'gzip');
    const d = await s.finish();
    await w.commit({ sha256: d.sha256, objectSha256: d.objectSha256 });
    expect(gunzipSync(readFileSync(join(root, 'e.log'))).length).to.equal(0);
  });
});
