// spec.maxBytes on whole captures against the kubelet model (virtual clock):
// head + marker + tail exactly, across stream cuts and an operator restart.
import { expect } from 'chai';
import { truncateWhole } from '../../../src/core/truncate.ts';
import type { ModelPod } from '../core/kubelet-model.ts';
import { Rng } from '../core/kubelet-sim.ts';
import { type Capture, makeCapture, setZlibDelay } from './capture-harness.ts';

function writeLines(cap: Capture, pod: ModelPod, n: number, everyMs: number): number {
  for (let i = 0; i < n; i++) cap.clock.at(i * everyMs, () => cap.model.write(pod, 'main', `line ${i} ${'y'.repeat(i % 70)}\n`));
  return n * everyMs;
}

function finish(cap: Capture, pod: ModelPod, at: number): void {
  cap.clock.at(at, () => {
    cap.model.exit(pod, 'main', 0);
    cap.model.setPhase(pod, 'Succeeded');
  });
}

/** One seeded capture (cuts, long lines, operator restarts); true if the stored run was truncated. `gzip` forces compression. */
async function seededCapture(seed: number, gzip = false): Promise<boolean> {
  const rng = new Rng(seed * 104_729);
  const max = rng.int(1024, 24_000);
  const timestamps = rng.chance(0.5);
  const cap = makeCapture({ seed, spec: { maxBytes: max, timestamps, ...(rng.chance(0.3) || gzip ? { compression: 'gzip' as const } : {}) } });
  if (rng.chance(0.2)) cap.model.zoneMin = -210;
  const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
  cap.model.start(pod, 'main');
  let t = 0;
  const lines = rng.int(0, 300);
  for (let i = 0; i < lines; i++) {
    t += rng.int(0, 30);
    const long = rng.chance(0.03);
    const body = long ? 'L'.repeat(rng.int(16 * 1024 - 5, 40 * 1024)) : `line ${i} ${'z'.repeat(rng.int(0, 150))}`;
    const newline = !(i === lines - 1 && rng.chance(0.2));
    cap.clock.at(t, () => cap.model.write(pod, 'main', body + (newline ? '\n' : ''), rng.chance(0.2) ? 0n : BigInt(rng.int(1, 900_000_000))));
  }
  if (rng.chance(0.3)) cap.clock.at(rng.int(0, t + 10), () => cap.restart());
  finish(cap, pod, t + rng.int(1, 300));
  cap.model.fault = (req, n) => (req.tailLines === undefined && n <= 3 && rng.chance(0.5) ? { cutAt: rng.int(1, 40_000) } : {});
  const st = await cap.run();
  const ctx = `seed ${seed} (maxBytes ${max}, timestamps ${timestamps}): ${st.phase}/${st.reason}: ${st.message}`;
  const c = st.containers[0];
  expect(cap.spools.open, `${ctx}: spools left`).to.equal(0);
  if (!c?.object) return false;
  const want = truncateWhole(pod.container('main').runs[0]!.expected(timestamps), max, timestamps);
  let got = cap.store.objects.get(c.object.uri)!;
  if (c.object.uri.endsWith('.gz')) got = (await import('node:zlib')).gunzipSync(got);
  expect(got.length, ctx).to.be.at.most(max);
  if (c.state !== 'Stored') return false;
  expect(got.equals(want.stored), `${ctx}: stored ${got.length} bytes, want ${want.stored.length}`).to.equal(true);
  expect(c.truncatedBytes ?? 0, ctx).to.equal(want.truncatedBytes);
  if (want.truncatedBytes > 0) expect([st.phase, st.reason], ctx).to.deep.equal(['Incomplete', 'Truncated']);
  return want.truncatedBytes > 0;
}

describe('runtime/capture with spec.maxBytes (kubelet model)', function () {
  this.timeout(30_000);
  const maxBytes = 4096;

  for (const timestamps of [false, true]) {
    it(`timestamps ${timestamps}: a stream cut inside the tail resumes exactly; Incomplete/Truncated, Truncated=True, truncatedBytes exact`, async () => {
      const cap = makeCapture({ spec: { maxBytes, timestamps } });
      const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
      cap.model.start(pod, 'main');
      const end = writeLines(cap, pod, 400, 10);
      // The first connection is cut ~600 bytes before the end of what the
      // container writes: inside the tail window (about 2 KiB).
      const total = (() => {
        let n = 0;
        for (let i = 0; i < 400; i++) n += `line ${i} ${'y'.repeat(i % 70)}\n`.length + 31;
        return n;
      })();
      cap.model.fault = (_req, n) => (n === 1 ? { cutAt: total - 600 } : {});
      // The container runs on for 2 s after its last line, past the retry's
      // wait: so the cut is one (a clean end followed within that wait by the
      // pod showing the run ended is the container's exit, not counted).
      finish(cap, pod, end + 2000);
      const st = await cap.run();
      const run = pod.container('main').runs[0]!;
      const want = truncateWhole(run.expected(timestamps), maxBytes, timestamps);
      expect(want.truncatedBytes).to.be.greaterThan(0);
      expect([st.phase, st.reason, st.result], st.message).to.deep.equal(['Incomplete', 'Truncated', 'Succeeded']);
      expect(st.retries, 'the cut was a retry').to.equal(1);
      const obj = cap.object('main', 0)!;
      expect(obj.equals(want.stored), `object of ${obj.length} bytes, want ${want.stored.length}`).to.equal(true);
      const c = st.containers[0]!;
      expect([c.state, c.bytes, c.truncatedBytes]).to.deep.equal(['Stored', want.stored.length, want.truncatedBytes]);
      // bytes is what is stored (the marker line included); with truncatedBytes it accounts for every byte read.
      const marker = /(\S+ )?\[logtail: truncated, \d+ bytes left out \(spec.maxBytes=4096\)\]\n/.exec(obj.toString('latin1'))![0];
      expect(c.bytes - marker.length + c.truncatedBytes!).to.equal(run.expected(timestamps).length);
      expect(st.bytes).to.equal(want.stored.length);
      const cond = st.conditions.find((x) => x.type === 'Truncated');
      expect([cond?.status, cond?.reason]).to.deep.equal(['True', 'Truncated']);
      expect(st.conditions.find((x) => x.type === 'Complete')?.status).to.equal('False');
      if (timestamps) expect(obj.toString('latin1')).to.match(/\n\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z \[logtail: truncated, \d+ bytes left out \(spec.maxBytes=4096\)\]\n/);
      // No status ever showed more stored bytes than the cap.
      for (const s of cap.statuses) for (const x of s.containers) expect(x.bytes).to.be.at.most(maxBytes);
      expect(cap.store.open).to.equal(0);
      expect(cap.spools.open, 'spools removed').to.equal(0);
    });
  }

  it('an operator restart while the tail is being read: the object is rewritten from the top, still exact', async () => {
    const cap = makeCapture({ spec: { maxBytes } });
    const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
    cap.model.start(pod, 'main');
    const end = writeLines(cap, pod, 400, 10);
    cap.clock.at(end - 300, () => cap.restart());
    finish(cap, pod, end + 5);
    const st = await cap.run();
    expect(cap.launches).to.equal(2);
    const want = truncateWhole(pod.container('main').runs[0]!.expected(), maxBytes, false);
    expect([st.phase, st.reason], st.message).to.deep.equal(['Incomplete', 'Truncated']);
    expect(cap.object('main', 0)!.equals(want.stored)).to.equal(true);
    expect(st.containers[0]!.truncatedBytes).to.equal(want.truncatedBytes);
  });

  it('commits each object with its checksums and the lifecycle labels (S3 tags / file-store record)', async () => {
    const cap = makeCapture({ spec: { maxBytes, retention: 'Delete' } });
    const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
    cap.model.start(pod, 'main');
    finish(cap, pod, writeLines(cap, pod, 400, 10) + 5);
    const st = await cap.run();
    const obj = st.containers[0]!.object!;
    expect(cap.store.metas.get(obj.uri)).to.deep.equal({
      sha256: obj.sha256,
      objectSha256: obj.objectSha256,
      labels: { 'logtail.dev/retention': 'Delete', 'logtail.dev/namespace': 'ns', 'logtail.dev/logtail': 'lt', 'logtail.dev/pod': 'p', 'logtail.dev/container': 'main' },
    });
  });

  it('a log within maxBytes is stored whole: Complete, Truncated=False, no truncatedBytes', async () => {
    const cap = makeCapture({ spec: { maxBytes } });
    const pod = cap.model.addPod('p', { containers: ['main'], restartPolicy: 'Never' });
    cap.model.start(pod, 'main');
    const end = writeLines(cap, pod, 40, 10);
    finish(cap, pod, end + 5);
    const st = await cap.run();
    expect([st.phase, st.reason], st.message).to.deep.equal(['Complete', 'Captured']);
    expect(cap.object('main', 0)!.equals(pod.container('main').runs[0]!.expected())).to.equal(true);
    expect(st.containers[0]!.truncatedBytes).to.equal(undefined);
    expect(st.conditions.find((x) => x.type === 'Truncated')?.status).to.equal('False');
  });

  it('seeded captures with cuts, long lines and operator restarts: a Stored run is exactly truncateWhole of what was written', async () => {
    const seeds = Number(process.env.CAPTURE_SEEDS ?? 60);
    let truncated = 0;
    for (let seed = 1; seed <= seeds; seed++) if (await seededCapture(seed)) truncated++;
    expect(truncated, 'some seeds truncate').to.be.greaterThan(seeds / 4);
  });

  it('gzip slow as on a loaded machine (each zlib chunk 50 ms late): the same captures, virtual time does not pass under zlib', async () => {
    // zlib works on libuv's thread pool: on a loaded machine each chunk waits
    // there (measured: a 1 kB gzip took 220-410 ms behind 8 busy pool jobs).
    // Before runUntil waited for zlib, virtual time jumped meanwhile: this
    // test failed "capture still running after 3600000 ms of virtual time",
    // as the seeded test above did once in CI under load.
    setZlibDelay(50);
    try {
      for (let seed = 1; seed <= 6; seed++) await seededCapture(seed, true);
    } finally {
      setZlibDelay(0);
    }
  });
});
