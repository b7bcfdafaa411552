// npm run bench -- concurrency [--captures 1000 --nodes 10 --mib 1 --seconds 60]
// Many captures at once (issue 11 item 5): N LogTails on N pods spread over
// simulated nodes, each container writing `--mib` over `--seconds`, S3 store.
// Measured: every object byte-exact against the simulator's record; operator
// peak RSS (/proc, every 200 ms); from the pod update showing the container
// terminated (the bench's own watch) to the LogTail's Complete (same watch);
// apiserver requests during the run by verb and resource, from the
// apiserver's own apiserver_request_total (all clients: the bench's own
// requests are listed apart).
import { createHash } from 'node:crypto';
import { copyFileSync, createReadStream, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { apiRequest, cpuSeconds, finish, kubectl, load1, logTail, parseOptions, quantile, rssKiB, simPod, sleep, spread, startOperator, table, watch, withCluster, type ClusterState } from './lib.ts';

type Counts = Map<string, number>;

/** apiserver_request_total summed by "VERB resource" (subresource appended); `metric` another counter with those labels. */
async function requestCounts(state: ClusterState, metric = 'apiserver_request_total'): Promise<Counts> {
  const text = await apiRequest<string>(state, 'GET', '/metrics');
  const out: Counts = new Map();
  for (const line of String(text).split('\n')) {
    if (!line.startsWith(`${metric}{`)) continue;
    const labels = Object.fromEntries([...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    const key = `${labels.verb} ${labels.resource}${labels.subresource ? '/' + labels.subresource : ''}`;
    out.set(key, (out.get(key) ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1)));
  }
  return out;
}

/**
 * WATCH requests open right now (the apiserver's apiserver_longrunning_requests
 * gauge). apiserver_request_total counts a WATCH only when it ends
 * (k8s.io/apiserver pkg/endpoints/metrics MonitorRequest runs after the
 * handler returns), so it cannot show the watches that are still open.
 */
async function openWatches(state: ClusterState): Promise<number> {
  const text = await apiRequest<string>(state, 'GET', '/metrics');
  let n = 0;
  for (const line of String(text).split('\n')) {
    if (line.startsWith('apiserver_longrunning_requests{') && line.includes('verb="WATCH"')) n += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return n;
}

interface MemSample {
  t: number;
  rssMiB: number;
  heapUsedMiB: number;
  heapTotalMiB: number;
  externalMiB: number;
  lagP99ms: number;
  /** Resident size of the C heap (`[heap]` in /proc/PID/smaps: glibc's main arena) and of the other anonymous mappings (V8's heap, mmap'd allocations, other arenas). */
  cHeapMiB: number;
  otherAnonMiB: number;
  /** Bytes the containers have written (the simulator's records) less the bytes the operator has flushed to its store. */
  behindMiB: number;
}

/** Sum of the sizes of the simulator's records of what the containers wrote. */
function writtenBytes(dir: string): number {
  let n = 0;
  for (const pod of readdirSync(dir)) {
    try {
      n += statSync(join(dir, pod, 'main.log')).size;
    } catch {
      /* not started */
    }
  }
  return n;
}

/** Resident MiB of the `[heap]` mapping and of the other anonymous mappings, from /proc/PID/smaps. */
function smapsSplit(pid: number): { heap: number; anon: number } {
  let heap = 0;
  let anon = 0;
  let kind: 'heap' | 'anon' | 'file' = 'file';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const m = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (m) kind = m[2] === '[heap]' ? 'heap' : m[2] === '' || m[2]!.startsWith('[anon') ? 'anon' : 'file';
    else if (line.startsWith('Rss:')) {
      const kib = Number(line.split(/\s+/)[1]);
      if (kind === 'heap') heap += kib;
      else if (kind === 'anon') anon += kib;
    }
  }
  return { heap: Math.round(heap / 102.4) / 10, anon: Math.round(anon / 102.4) / 10 };
}

/** RSS from /proc; heap, external memory and event-loop lag from the operator's /metrics. */
async function operatorMemory(port: number, pid: number, simNs: string): Promise<MemSample> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const get = (name: string) => Number(text.match(new RegExp(`^${name} ([0-9.e+-]+)`, 'm'))?.[1] ?? NaN);
  const mib = (n: number) => Math.round((n / 1048576) * 10) / 10;
  const split = smapsSplit(pid);
  return {
    cHeapMiB: split.heap,
    otherAnonMiB: split.anon,
    t: Date.now(),
    rssMiB: mib(rssKiB(pid) * 1024),
    heapUsedMiB: mib(get('nodejs_heap_size_used_bytes')),
    heapTotalMiB: mib(get('nodejs_heap_size_total_bytes')),
    externalMiB: mib(get('nodejs_external_memory_bytes')),
    lagP99ms: Math.round(get('nodejs_eventloop_lag_p99_seconds') * 1000),
    behindMiB: mib((existsSync(simNs) ? writtenBytes(simNs) : 0) - (Number(text.match(/^logtail_bytes_captured_total\{[^}]*\} (\S+)/m)?.[1]) || 0)),
  };
}

/** The operator's logtail_status_writes_total by kind, and the mean of its store-commit histogram, from its /metrics. */
async function operatorStatusWrites(port: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^logtail_status_writes_total\{kind="(\w+)"\} (\d+)/gm)) out[m[1]!] = Number(m[2]);
  const get = (name: string) => Number(text.match(new RegExp(`^${name} ([0-9.e+-]+)`, 'm'))?.[1] ?? NaN);
  out.store_commit_mean_s = Math.round((get('logtail_store_upload_seconds_sum') / get('logtail_store_upload_seconds_count')) * 1000) / 1000;
  return out;
}

/** Creates the objects 100 per kubectl call; `make(i)` builds item i when its batch is sent. */
async function createAll(state: ClusterState, n: number, make: (i: number) => unknown): Promise<void> {
  for (let i = 0; i < n; i += 100) {
    const items = Array.from({ length: Math.min(100, n - i) }, (_, k) => make(i + k));
    const r = await kubectl(state, ['create', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items }), timeoutMs: 300_000 });
    if (r.code !== 0) throw new Error(r.stderr);
  }
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path) as AsyncIterable<Buffer>) h.update(c);
  return h.digest('hex');
}

export async function concurrencyBench(argv: string[]): Promise<void> {
  const o = parseOptions('concurrency', argv, {
    captures: { default: 1000, help: 'LogTails, each on its own pod' },
    nodes: { default: 10, help: 'simulated nodes the pods spread over (round robin)' },
    mib: { default: 1, help: 'MiB each container writes' },
    seconds: { default: 60, help: 'over how long each container writes it' },
    'max-streams': { default: 1000, help: 'the operator\'s --max-concurrent-streams' },
    'status-writes': { default: '', help: 'the operator\'s --status-writes-per-second (empty: its default)' },
    'heap-mib': { default: '', help: 'the operator\'s V8 old-space limit in MiB (NODE_OPTIONS=--max-old-space-size; empty: V8\'s default)' },
    'operator-args': { default: '', help: 'extra operator flags without their dashes, "log-level=info,idle-timeout=30s"' },
    'operator-log': { default: '', help: 'copy the operator\'s log to this file at the end' },
    'operator-wrap': { default: '', help: 'a command the operator runs under, its words separated by commas, e.g. "heaptrack,-o,/tmp/op" (RSS is then the operator\'s own process)' },
    'operator-env': { default: '', help: 'extra environment for the operator, "K=V,K2=V2" (e.g. GLIBC_TUNABLES=glibc.malloc.mmap_threshold=65536)' },
  });
  const ns = 'concurrency';
  const lines = Math.max(1, Math.floor((o.mib * 1048576) / 200));
  const nodes = Array.from({ length: o.nodes }, (_, i) => `sim-${i + 1}`);
  await withCluster(async (state, dir) => {
    await kubectl(state, ['create', 'namespace', ns]);
    const extra = [...(o['status-writes'] ? ['--status-writes-per-second', o['status-writes']] : []), ...o['operator-args'].split(',').filter(Boolean).map((a) => `--${a}`)];
    const env: Record<string, string> = Object.fromEntries(o['operator-env'].split(',').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
    if (o['heap-mib']) env.NODE_OPTIONS = `--max-old-space-size=${o['heap-mib']}`;
    const op = await startOperator(state, dir, { name: 'op-concurrency', store: `s3://${state.s3.bucket}/concurrency`, args: ['--watch-namespaces', ns, '--s3-endpoint', state.s3.endpoint, '--max-concurrent-streams', String(o['max-streams']), ...extra], env, ...(o['operator-wrap'] ? { wrap: o['operator-wrap'].split(',') } : {}) });
    const idleRss = rssKiB(op.pid) / 1024;
    // before the bench opens its own two watches: the operator's informers are already open
    const before = await requestCounts(state);
    const durBefore = await requestCounts(state, 'apiserver_request_duration_seconds_sum');
    const openBefore = await openWatches(state);
    let openDuring: number;
    const terminatedSeen = new Map<string, number>();
    const completeSeen = new Map<string, number>();
    const ended = new Map<string, string>();
    const wPods = watch(state, `/api/v1/namespaces/${ns}/pods`, (ev, at) => {
      const cs = (ev.object.status as { containerStatuses?: Array<{ state?: { terminated?: unknown } }> } | undefined)?.containerStatuses;
      if (cs?.[0]?.state?.terminated && !terminatedSeen.has(ev.object.metadata.name)) terminatedSeen.set(ev.object.metadata.name, at);
    });
    const wLts = watch(state, `/apis/logtail.dev/v1alpha1/namespaces/${ns}/logtails`, (ev, at) => {
      const phase = (ev.object.status as { phase?: string } | undefined)?.phase;
      const name = ev.object.metadata.name;
      if (phase === 'Complete' && !completeSeen.has(name)) completeSeen.set(name, at);
      if (phase && ['Complete', 'Failed', 'Incomplete'].includes(phase) && !ended.has(name)) ended.set(name, phase);
    });
    let rssPeak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        rssPeak = Math.max(rssPeak, rssKiB(op.pid) / 1024);
        await sleep(200);
      }
    })();
    // where the memory is (V8 heap, external/ArrayBuffers), from the operator's /metrics every 5 s
    const memSamples: MemSample[] = [];
    const memSampler = (async () => {
      while (sampling) {
        const m = await operatorMemory(op.port, op.pid, join(state.simDir, ns)).catch(() => undefined);
        if (m) memSamples.push(m);
        for (let i = 0; i < 25 && sampling; i++) await sleep(200);
      }
    })();
    const names = Array.from({ length: o.captures }, (_, i) => `c-${i + 1}`);
    const l0 = load1();
    const cpu0 = cpuSeconds(op.pid);
    const t0 = performance.now();
    try {
      const tl = performance.now();
      // creating N objects takes minutes here: a LogTail must not give up on its pod meanwhile
      await createAll(state, names.length, (i) => logTail(ns, names[i]!, { podName: names[i]!, podNotFoundTimeout: '30m' }));
      // Creating the pods takes as long again; every container starts at the
      // same instant (startDelaySeconds counts down from when its pod is
      // created), so all N write at once, as the goal says.
      const startAt = Date.now() + 1.5 * (performance.now() - tl) + 10_000;
      await createAll(state, names.length, (i) => simPod(ns, names[i]!, { containers: { main: { lines, lineBytes: 200, linesPerSecond: lines / o.seconds, exitCode: 0, startDelaySeconds: Math.max(0, (startAt - Date.now()) / 1000) } } }));
      // the end of each capture from a list every 2 s (the watch gives the times; a list cannot be missed)
      const deadline = Date.now() + (o.seconds + 20 * 60) * 1000;
      for (;;) {
        // an apiserver this busy may time a list out: look again next time
        const list = await apiRequest<{ items: Array<{ metadata: { name: string }; status?: { phase?: string; reason?: string; message?: string } }> }>(state, 'GET', `/apis/logtail.dev/v1alpha1/namespaces/${ns}/logtails`).catch((err: unknown) => {
          process.stderr.write(`list logtails: ${String(err)}\n`);
          return { items: [] };
        });
        for (const lt of list.items) {
          const phase = lt.status?.phase;
          if (phase && ['Complete', 'Failed', 'Incomplete'].includes(phase) && !ended.has(lt.metadata.name)) ended.set(lt.metadata.name, phase === 'Complete' ? phase : `${phase}/${lt.status?.reason}: ${String(lt.status?.message).slice(0, 200)}`);
        }
        if (ended.size >= names.length) break;
        if (Date.now() > deadline) throw new Error(`${names.length - ended.size} captures not finished`);
        await sleep(2000);
      }
    } catch (err) {
      await op.stop();
      throw err;
    } finally {
      sampling = false;
      await sampler;
      await memSampler;
      // while the bench's own two watches are still open
      openDuring = await openWatches(state).catch(() => Number.NaN);
      wPods.close();
      wLts.close();
    }
    const secs = (performance.now() - t0) / 1000;
    const after = await requestCounts(state);
    const durAfter = await requestCounts(state, 'apiserver_request_duration_seconds_sum');
    const opCpu = cpuSeconds(op.pid) - cpu0;
    const opWrites = await operatorStatusWrites(op.port).catch(() => ({}));
    await op.stop();
    if (o['operator-log']) copyFileSync(join(dir, 'op-concurrency.log'), o['operator-log']);
    const delta = [...after].map(([k, v]) => [k, v - (before.get(k) ?? 0)] as const).filter(([, d]) => d > 0).sort((a, b) => b[1] - a[1]);
    // byte-exact: each object against the simulator's record of what the container wrote
    const s3 = new S3Client({ endpoint: state.s3.endpoint, region: state.s3.region, forcePathStyle: true, credentials: { accessKeyId: state.s3.accessKey, secretAccessKey: state.s3.secretKey } });
    let exactCount = 0;
    // when the operator decided the outcome (status.completionTime, its clock = this machine's)
    const writtenAt = new Map<string, number>();
    for (const name of names) {
      const lt = await apiRequest<{ status?: { completionTime?: string; containers?: Array<{ object?: { uri?: string } }> } }>(state, 'GET', `/apis/logtail.dev/v1alpha1/namespaces/${ns}/logtails/${name}`);
      const done = Date.parse(lt.status?.completionTime ?? '');
      if (Number.isFinite(done) && terminatedSeen.has(name)) writtenAt.set(name, done);
      const uri = lt.status?.containers?.[0]?.object?.uri;
      if (!uri) continue;
      const u = new URL(uri);
      const got = await s3.send(new GetObjectCommand({ Bucket: u.host, Key: decodeURIComponent(u.pathname.slice(1)) }));
      const h = createHash('sha256');
      for await (const c of got.Body as AsyncIterable<Buffer>) h.update(c);
      if (h.digest('hex') === (await sha256File(join(state.simDir, ns, name, 'main.log')).catch(() => 'missing'))) exactCount++;
    }
    s3.destroy();
    const lat = names.filter((n) => completeSeen.has(n) && terminatedSeen.has(n)).map((n) => (completeSeen.get(n)! - terminatedSeen.get(n)!) / 1000);
    const p99 = quantile(lat, 0.99);
    // the same interval ending at the operator's completionTime instead of the bench's watch: tells the operator's time from the watch's delivery delay
    const latOp = names.filter((n) => writtenAt.has(n)).map((n) => (writtenAt.get(n)! - terminatedSeen.get(n)!) / 1000);
    console.log(`terminated (bench's pod watch) → status.completionTime (operator's clock): p50 ${quantile(latOp, 0.5).toFixed(2)} s, p99 ${quantile(latOp, 0.99).toFixed(2)} s, spread ${spread(latOp)} s`);
    // watches open at the end of the run beyond those open before it, less the bench's own two: the operator's should stay 0, not grow with captures
    const watches = openDuring - openBefore - 2;
    console.log('');
    // the apiserver's own time per request (apiserver_request_duration_seconds): is the server the slow part?
    const meanMs = (k: string, d: number) => Math.round(((durAfter.get(k) ?? 0) - (durBefore.get(k) ?? 0)) / d * 1000);
    table(['verb resource (all clients)', 'requests during the run', 'mean ms in the apiserver'], delta.map(([k, d]) => [k, d, k.startsWith('WATCH') || k.startsWith('CONNECT') ? '-' : meanMs(k, d)]));
    console.log('the bench itself made: 2 WATCH (pods, logtails), the POSTs of pods and logtails (kubectl create, 100 per call); the simulator: pods/binding, pods/status, events');
    const top = memSamples.reduce<MemSample | undefined>((a, b) => (!a || b.rssMiB > a.rssMiB ? b : a), undefined);
    if (top) console.log(`operator memory at its highest sampled RSS (every 5 s): rss ${top.rssMiB} MiB, V8 heap used ${top.heapUsedMiB} / total ${top.heapTotalMiB} MiB, external ${top.externalMiB} MiB, C heap ([heap]) ${top.cHeapMiB} MiB, other anonymous mappings ${top.otherAnonMiB} MiB; event-loop lag p99 max over the run ${Math.max(...memSamples.map((m) => m.lagP99ms))} ms; most bytes written by the containers and not yet stored (every 5 s): ${Math.max(...memSamples.map((m) => m.behindMiB))} MiB`);
    const patches = after.get('PATCH logtails/status')! - (before.get('PATCH logtails/status') ?? 0);
    console.log(`status PATCHes per capture: ${(patches / o.captures).toFixed(1)} (${patches} in all); the operator's own count by kind: ${JSON.stringify(opWrites)}; operator CPU ${opCpu.toFixed(1)} s over ${secs.toFixed(0)} s`);
    console.log(`open watches at the end of the run beyond those open before it, other than the bench's two: ${watches} (${openBefore} open before, ${openDuring} at the end; the operator's informers were open before)`);
    table(['captures', 'nodes', 'MiB each', 'exact', 'idle RSS MiB', 'peak RSS MiB', 'p50 s', 'p99 s', 'spread s', 'seconds', 'load1 at start'], [[o.captures, o.nodes, o.mib, `${exactCount}/${o.captures}`, idleRss, rssPeak, quantile(lat, 0.5), p99, spread(lat), secs, l0]]);
    const notComplete = [...ended].filter(([, p]) => p !== 'Complete');
    if (notComplete.length) console.log(`not Complete (${notComplete.length}):\n${notComplete.slice(0, 10).map(([n, p]) => `  ${n}=${p}`).join('\n')}${notComplete.length > 10 ? '\n  …' : ''}`);
    console.log(`goals: exact ${exactCount === o.captures ? 'met' : 'NOT met'}; peak RSS < 256 MiB ${rssPeak < 256 ? 'met' : 'NOT met'}; p99 < 2 s ${p99 < 2 ? 'met' : 'NOT met'} (this run)`);
    finish('concurrency', { options: o, idleRss, rssPeak, secs, opCpuSeconds: opCpu, memSamples, statusWritesByKind: opWrites, latencies: lat, latenciesToCompletionTime: latOp, requests: Object.fromEntries(delta), notComplete }, {
      captures: o.captures,
      exact: exactCount === o.captures,
      rss_peak_mib: rssPeak,
      p99_complete_s: p99,
      watches,
      status_patches_per_capture: Math.round((patches / o.captures) * 10) / 10,
    });
  }, nodes);
}
