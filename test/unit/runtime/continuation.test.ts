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
import type { ModelPod } from '../core/kubelet-model.ts';
import { type Capture, makeCapture } from './capture-harness.ts';

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
      expect(readdirSync(join(root, 'ns', 'p'))).to.deep.equal(['c-0.log', 'c-0.log.logtail.json']); // the object and its record: no temp file left
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

/** `n` lines of ~`size` bytes, one every `everyMs`, from `startMs`; returns when the last is written. */
function writeLines(cap: Capture, pod: ModelPod, n: number, everyMs: number, size = 60): number {
  let t = 0;
  for (let i = 0; i < n; i++) {
    t = i * everyMs;
    cap.clock.at(t, () => cap.model.write(pod, 'main', `line ${i} ${'x'.repeat(size)}\n`));
  }
  return t;
}

describe('runtime/capture-daemon continuation (kubelet model, virtual clock)', () => {
  for (const mode of ['none', 'fsync', 'parts'] as const) {
    it(`rotated while streaming, then an operator restart: ${mode === 'none' ? 'no durable checkpoint, read again from the top: LogGap' : `continued from the ${mode} checkpoint: Complete, byte-exact`}`, async () => {
      const cap = makeCapture({ storeMode: mode, partSize: 2000 });
      const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
      cap.model.start(pod, 'main');
      const end = writeLines(cap, pod, 400, 10);
      // Rotated while the capture follows the log (it follows into the new
      // file), then the operator restarts after more was read: the
      // checkpoint is in the current file.
      cap.clock.at(1000, () => cap.model.rotate(pod, 'main'));
      cap.clock.at(3000, () => cap.restart());
      cap.clock.at(end + 10, () => {
        cap.model.exit(pod, 'main', 0);
        cap.model.setPhase(pod, 'Succeeded');
      });
      const st = await cap.run();
      expect(cap.launches).to.equal(2);
      if (mode === 'none') {
        expect([st.phase, st.reason], st.message).to.deep.equal(['Incomplete', 'LogGap']);
        return;
      }
      expect([st.phase, st.reason], st.message).to.deep.equal(['Complete', 'Captured']);
      expect(cap.store.continued).to.equal(1);
      expect(cap.object('main', 0)!.equals(pod.container('main').runs[0]!.expected())).to.equal(true);
      expect(cap.store.uploads.size).to.equal(0);
    });
  }

  for (const [reason, kept] of [['Deleted', false], ['SpecChanged', false], ['OperatorExiting', true], ['LostLeadership', true], ['ShardMoved', true]] as const) {
    it(`a stop for ${reason} ${kept ? 'leaves the upload with a final checkpoint' : 'aborts the upload'}`, async () => {
      const cap = makeCapture({ storeMode: 'parts', partSize: 1000 });
      const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
      cap.model.start(pod, 'main');
      writeLines(cap, pod, 400, 10);
      cap.clock.at(2505, () => cap.stop(reason));
      const st = await cap.run();
      expect(st.phase).to.equal('Streaming');
      const u = st.containers[0]!.upload;
      expect(cap.statuses.some((x) => x.containers[0]?.upload !== undefined), 'a checkpoint was recorded before the stop').to.equal(true);
      if (!kept) {
        expect(cap.store.uploads.size, 'no multipart upload left').to.equal(0);
        return;
      }
      expect(cap.store.uploads.size).to.equal(1);
      expect(u, 'final checkpoint').to.not.equal(undefined);
      // Final: every full part is durable and recorded (less than one part is not).
      const stored = [...cap.store.uploads.values()][0]!;
      expect(stored.parts.slice(1).reduce((n, b) => n + b.length, 0)).to.equal(u!.objectBytes);
      expect(st.containers[0]!.bytes - u!.bytes).to.be.below(1000 + 512 * 1024);
      expect(cap.store.open).to.equal(0);
    });
  }
});
