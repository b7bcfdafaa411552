// The fault matrix, F17 (docs/reliability.md): many LogTails with
// --max-concurrent-streams: all Complete and byte-exact, and never more log
// streams open at the kubelet than the limit, counted by the node simulator
// itself (its nodes count `/containerLogs/` requests in flight; read at
// /debug/log-requests). It runs at the size, 1 000 LogTails with a
// limit of 50 (about 70 s here); LOGTAIL_MATRIX_F17_CAPTURES /
// LOGTAIL_MATRIX_F17_STREAMS change the size (docs/reliability.md has the runs).
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { sleep } from '../../../src/dev/proc.ts';
import { cluster, uniqueName, type TestCluster } from '../fixture.ts';
import { createNamespace, installCrd, logTailManifest, podManifest, sha256File, startOperator, uriToPath, type LogTailObject, type OperatorProcess } from '../operator/harness.ts';
import { recordedPath } from './helpers.ts';

const CAPTURES = Number(process.env.LOGTAIL_MATRIX_F17_CAPTURES ?? 1000);
const STREAMS = Number(process.env.LOGTAIL_MATRIX_F17_STREAMS ?? 50);

interface LogRequests {
  open: number;
  max: number;
  total: number;
}

/** The simulator's count of log requests in flight (all its nodes); `reset` sets the maximum to the current count. */
function logRequests(c: TestCluster, reset = false): Promise<LogRequests> {
  const ready = JSON.parse(readFileSync(join(c.dir, 'simulator', 'ready.json'), 'utf8')) as { nodes: Record<string, number> };
  const port = Object.values(ready.nodes)[0]!;
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: `/debug/log-requests${reset ? '?reset=1' : ''}`, rejectUnauthorized: false }, (res) => {
      let body = '';
      res.on('data', (b: Buffer) => (body += b.toString()));
      res.on('end', () => resolve(JSON.parse(body) as LogRequests));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Requests the apiserver answered 429 (APF or "storage is (re)initializing"), from its own metrics. */
async function apiserver429s(c: TestCluster): Promise<string> {
  const r = await c.kubectl(['get', '--raw', '/metrics'], { timeoutMs: 60_000 });
  if (r.code !== 0) return `unknown (${r.stderr.trim()})`;
  let n = 0;
  for (const line of r.stdout.split('\n')) if (line.startsWith('apiserver_request_total{') && line.includes('code="429"')) n += Number(line.slice(line.lastIndexOf(' ') + 1));
  return String(n);
}

describe(`fault matrix: F17 ${CAPTURES} LogTails with --max-concurrent-streams ${STREAMS}`, function () {
  let wallStart = 0;
  this.timeout(Math.max(300_000, CAPTURES * 1_500));
  let c: TestCluster;
  let ns: string;
  let op: OperatorProcess;

  before(async function () {
    this.timeout(120_000);
    wallStart = Date.now();
    c = await cluster();
    await installCrd(c);
    ns = uniqueName('mx-f17');
    await createNamespace(c, ns);
    op = await startOperator(c, { args: ['--watch-namespaces', ns, '--max-concurrent-streams', String(STREAMS)] });
  });

  after(async () => {
    console.log(`      [wall] scale.test.ts: ${((Date.now() - wallStart) / 1000).toFixed(1)} s`);
    await op?.stop('SIGTERM');
  });

  it(`F17 ${CAPTURES} LogTails, --max-concurrent-streams ${STREAMS}: all Complete and byte-exact, never more than ${STREAMS} streams open at the kubelet`, async () => {
    const name = (i: number) => `p${String(i).padStart(4, '0')}`;
    // Each container writes 15 lines over 3 s; the containers start over 12.5 s (16 a second at 200), so about
    // 48 want a stream at once: the limit is reached and the rest queue. The pods spread over the simulator's nodes.
    const create = async (make: (i: number) => unknown) => {
      for (let i = 0; i < CAPTURES; i += 100) {
        const items = Array.from({ length: Math.min(100, CAPTURES - i) }, (_, k) => make(i + k));
        const r = await c.kubectl(['create', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items }), timeoutMs: 300_000 });
        if (r.code !== 0) throw new Error(r.stderr);
      }
    };
    const base = await logRequests(c, true);
    expect(base.open, 'no log request in flight before the run').to.equal(0);
    const t0 = Date.now();
    // The LogTails come first, then the pods; on a loaded machine (load average 34) creating 1 000 of each took
    // longer than the default podNotFoundTimeout (2m): 354 ended Failed/PodNotFound. This row is about the stream limit.
    await create((i) => logTailManifest(ns, name(i), { podName: name(i), podNotFoundTimeout: '15m' }));
    await create((i) => podManifest(ns, name(i), { script: { containers: { main: { lines: 15, lineBytes: 90, linesPerSecond: 5, exitCode: 0, startDelaySeconds: (i / CAPTURES) * 12.5 } } } }));
    let maxSeen = 0;
    let done: LogTailObject[] = [];
    const deadline = Date.now() + Math.max(240_000, CAPTURES * 1_200);
    while (Date.now() < deadline) {
      maxSeen = Math.max(maxSeen, (await logRequests(c)).max);
      const r = await c.kubectl(['get', 'logtails', '-n', ns, '-o', 'json'], { timeoutMs: 120_000 });
      if (r.code === 0) {
        const items = (JSON.parse(r.stdout) as { items: LogTailObject[] }).items;
        done = items.filter((x) => ['Complete', 'Incomplete', 'Failed'].includes(x.status?.phase ?? ''));
        if (done.length === CAPTURES) break;
      }
      await sleep(2_000);
    }
    const seconds = (Date.now() - t0) / 1000;
    const counts = await logRequests(c);
    maxSeen = Math.max(maxSeen, counts.max);
    const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    console.log(`      [F17] ${done.length}/${CAPTURES} finished in ${seconds.toFixed(1)} s; log requests at the kubelet: ${counts.total - base.total} in all, at most ${maxSeen} at once (limit ${STREAMS}); apiserver 429s: ${await apiserver429s(c)}; load average ${load}`);
    expect(done.length, `finished in ${seconds.toFixed(0)} s`).to.equal(CAPTURES);
    const notComplete = done.filter((x) => x.status?.phase !== 'Complete').map((x) => `${x.metadata.name}: ${x.status?.phase}/${x.status?.reason} ${x.status?.message ?? ''}`);
    const byReason: Record<string, number> = {};
    for (const x of done) if (x.status?.phase !== 'Complete') byReason[`${x.status?.phase}/${x.status?.reason}`] = (byReason[`${x.status?.phase}/${x.status?.reason}`] ?? 0) + 1;
    expect(notComplete.slice(0, 5), `${notComplete.length} not Complete: ${JSON.stringify(byReason)}`).to.deep.equal([]);
    expect(maxSeen, 'streams open at once at the kubelet').to.be.at.most(STREAMS);
    expect(maxSeen, 'the limit was reached (otherwise the count proves nothing)').to.be.at.least(Math.ceil(STREAMS / 2));
    const mismatched: string[] = [];
    for (const lt of done) {
      const cap = lt.status!.containers![0]!;
      if ((await sha256File(uriToPath(cap.object!.uri))) !== (await sha256File(recordedPath(c, ns, lt.metadata.name, 'main')))) mismatched.push(lt.metadata.name);
    }
    expect(mismatched, 'objects whose sha256 differs from the recording').to.deep.equal([]);
  });
});
