// npm run bench -- sharding [--replicas 3 --captures 300 --nodes 3 --kib 256 --seconds 60 --kill-after 25 --lease-duration 15s]
// Scale-out (issue 11 item 7): N operator processes with --shard on one local
// control plane split the LogTails between them; one is SIGKILLed while the
// containers are still writing, and the others take its LogTails over once
// its Lease has expired. Measured: every object byte-exact against the
// simulator's record; one finalization per LogTail (terminal status records
// seen on a watch, and terminal Events); the largest share of the LogTails
// one replica owned (annotation logtail.dev/owner) while all N were live; how
// long the survivors took to own every LogTail the killed replica held.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { type Operator, apiRequest, finish, kubectl, logTail, parseOptions, simPod, sleep, startOperator, table, watch, withCluster, type ClusterState } from './lib.ts';

const OWNER = 'logtail.dev/owner';
const TERMINAL = new Set(['Complete', 'Failed', 'Incomplete']);

interface LtView {
  metadata: { name: string; uid: string; annotations?: Record<string, string>; finalizers?: string[] };
  status?: { phase?: string; completionTime?: string; containers?: Array<{ object?: { uri?: string } }> };
}

/** Creates the objects 100 per kubectl call; `make(i)` builds item i when its batch is sent. */
async function createAll(state: ClusterState, n: number, make: (i: number) => unknown): Promise<void> {
  for (let i = 0; i < n; i += 100) {
    const items = Array.from({ length: Math.min(100, n - i) }, (_, k) => make(i + k));
    const r = await kubectl(state, ['create', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items }), timeoutMs: 300_000 });
    if (r.code !== 0) throw new Error(r.stderr);
  }
}

async function listLogTails(state: ClusterState, ns: string): Promise<LtView[]> {
  return (await apiRequest<{ items: LtView[] }>(state, 'GET', `/apis/logtail.dev/v1alpha1/namespaces/${ns}/logtails`)).items;
}

/** LogTails per owner annotation ('' = unowned). */
function owners(items: LtView[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const lt of items) {
    const o = lt.metadata.annotations?.[OWNER] ?? '';
    out.set(o, (out.get(o) ?? 0) + 1);
  }
  return out;
}

async function sha256Of(stream: AsyncIterable<Buffer>): Promise<string> {
  const h = createHash('sha256');
  for await (const c of stream) h.update(c);
  return h.digest('hex');
}

/** Waits until every replica's /metrics shows `n` live shard members. */
async function waitForMembers(ops: Operator[], n: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const op of ops) {
    for (;;) {
      const text = await fetch(`http://127.0.0.1:${op.port}/metrics`).then((r) => r.text()).catch(() => '');
      const m = text.match(/^logtail_shard_members (\d+)/m);
      if (m && Number(m[1]) === n) break;
      if (Date.now() > deadline) throw new Error(`replica on port ${op.port} does not see ${n} shard members (${m?.[1] ?? 'no metric'})`);
      await sleep(250);
    }
  }
}

export async function shardingBench(argv: string[]): Promise<void> {
  const o = parseOptions('sharding', argv, {
    replicas: { default: 3, help: 'operator processes with --shard' },
    captures: { default: 300, help: 'LogTails, each on its own pod' },
    nodes: { default: 3, help: 'simulated nodes the pods spread over (round robin)' },
    kib: { default: 256, help: 'KiB each container writes' },
    seconds: { default: 60, help: 'over how long each container writes it' },
    'kill-after': { default: 25, help: 'seconds after the containers start writing when one replica (the one owning the most) is SIGKILLed' },
    'lease-duration': { default: '15s', help: 'the replicas\' --shard-lease-duration' },
    'join-after': { default: 'none', help: 'seconds after the containers start writing when one more replica joins (its share moves to it: ShardMoved handovers); none: no join' },
  });
  const ns = 'sharding';
  const lines = Math.max(1, Math.floor((o.kib * 1024) / 200));
  const nodes = Array.from({ length: o.nodes }, (_, i) => `sim-${i + 1}`);
  await withCluster(async (state, dir) => {
    await kubectl(state, ['create', 'namespace', ns]);
    const ids = Array.from({ length: o.replicas }, (_, i) => `op-${i + 1}`);
    const args = (id: string) => ['--shard', '--shard-id', id, '--shard-lease-duration', o['lease-duration'], '--watch-namespaces', ns, '--s3-endpoint', state.s3.endpoint, '--max-concurrent-streams', '1000', '--log-level', 'info'];
    const ops = new Map<string, Operator>();
    const start = (id: string) => startOperator(state, dir, { name: `op-sharding-${id}`, store: `s3://${state.s3.bucket}/sharding`, args: args(id) });
    const started = await Promise.all(ids.map(start));
    ids.forEach((id, i) => ops.set(id, started[i]!));
    const join = async () => {
      const id = `op-${o.replicas + 1}`;
      ops.set(id, await start(id));
      return id;
    };
    let joining: Promise<string> | undefined;
    try {
      await waitForMembers([...ops.values()], o.replicas);
      await runAndCheck(state, ns, o, lines, ops, () => (joining = join()));
    } finally {
      await joining?.catch(() => undefined);
      await Promise.all([...ops.values()].map((op) => op.stop()));
    }
  }, nodes);
}

type Options = { replicas: number; captures: number; kib: number; seconds: number; 'kill-after': number; 'lease-duration': string; 'join-after': string };

async function runAndCheck(state: ClusterState, ns: string, o: Options, lines: number, ops: Map<string, Operator>, join: () => Promise<string>): Promise<void> {
  // terminal records per LogTail (phase@completionTime) and owner changes, from a watch
  const terminal = new Map<string, Set<string>>();
  const ownerLog: Array<{ at: number; name: string; owner: string }> = [];
  const lastOwner = new Map<string, string>();
  const w = watch(state, `/apis/logtail.dev/v1alpha1/namespaces/${ns}/logtails`, (ev, at) => {
    const lt = ev.object as unknown as LtView;
    const phase = lt.status?.phase;
    if (phase && TERMINAL.has(phase)) {
      const set = terminal.get(lt.metadata.name) ?? new Set<string>();
      set.add(`${phase}@${lt.status?.completionTime}`);
      terminal.set(lt.metadata.name, set);
    }
    const owner = lt.metadata.annotations?.[OWNER] ?? '';
    if (lastOwner.get(lt.metadata.name) !== owner) {
      lastOwner.set(lt.metadata.name, owner);
      ownerLog.push({ at, name: lt.metadata.name, owner });
    }
  });
  const names = Array.from({ length: o.captures }, (_, i) => `s-${i + 1}`);
  const t0 = performance.now();
  let killed = '';
  let killedAt = 0;
  let killedHeld: string[] = [];
  let maxShare = 0;
  let beforeKill = new Map<string, number>();
  try {
    const tl = performance.now();
    await createAll(state, names.length, (i) => logTail(ns, names[i]!, { podName: names[i]!, podNotFoundTimeout: '30m' }));
    // every container starts writing at the same instant, after all pods exist
    const startAt = Date.now() + 1.5 * (performance.now() - tl) + 5_000;
    await createAll(state, names.length, (i) => simPod(ns, names[i]!, { containers: { main: { lines, lineBytes: 200, linesPerSecond: lines / o.seconds, exitCode: 0, startDelaySeconds: Math.max(0, (startAt - Date.now()) / 1000) } } }));
    const killAt = startAt + o['kill-after'] * 1000;
    const joinAt = o['join-after'] === 'none' ? Infinity : startAt + Number(o['join-after']) * 1000;
    let joined: Promise<string> | undefined;
    const deadline = Date.now() + (o.seconds + 20 * 60) * 1000;
    for (;;) {
      const items = await listLogTails(state, ns).catch((err: unknown) => {
        process.stderr.write(`list logtails: ${String(err)}\n`);
        return undefined;
      });
      if (items) {
        const by = owners(items);
        if (!joined && Date.now() >= joinAt) {
          joined = join();
          joined.then((id) => process.stderr.write(`${id} joined\n`), () => undefined);
        }
        if (!killed) {
          // the share while all replicas are live: of all LogTails, the most one replica owns
          for (const [owner, n] of by) if (owner) maxShare = Math.max(maxShare, n / o.captures);
          beforeKill = by;
          if (Date.now() >= killAt && (!joined || (await joined.then(() => true)))) {
            killed = [...ops.keys()].sort((a, b) => (by.get(b) ?? 0) - (by.get(a) ?? 0))[0]!;
            // what it held at the kill: owned by it and not finished, by this list or by the watch (either may lag)
            const listed = new Set(items.filter((lt) => lt.metadata.annotations?.[OWNER] === killed && !TERMINAL.has(lt.status?.phase ?? '')).map((lt) => lt.metadata.name));
            killedHeld = names.filter((n) => (listed.has(n) || lastOwner.get(n) === killed) && !terminal.has(n));
            ops.get(killed)!.proc.kill('SIGKILL');
            killedAt = Date.now();
            process.stderr.write(`killed ${killed} (owned ${by.get(killed) ?? 0}, ${killedHeld.length} unfinished)\n`);
          }
        }
        const done = items.filter((lt) => TERMINAL.has(lt.status?.phase ?? '') && !(lt.metadata.finalizers ?? []).includes('logtail.dev/finalizer'));
        if (killed && done.length >= names.length) break;
      }
      if (Date.now() > deadline) throw new Error('captures not finished in time');
      await sleep(1000);
    }
  } finally {
    // the watch may lag the list (by minutes on a loaded machine): wait for it to show every terminal status
    const until = Date.now() + 120_000;
    while (terminal.size < names.length && Date.now() < until) await sleep(500);
    await sleep(1000);
    w.close();
  }
  const secs = (performance.now() - t0) / 1000;
  const survivors = [...ops.keys()].filter((id) => id !== killed);
  for (const id of survivors) if (ops.get(id)!.proc.exitCode !== null) throw new Error(`replica ${id} exited (${ops.get(id)!.proc.exitCode})`);
  await report(state, ns, o, names, { secs, killed, killedHeld, maxShare, beforeKill, terminal, ownerLog, killedAt });
}

async function report(
  state: ClusterState,
  ns: string,
  o: Options,
  names: string[],
  r: { secs: number; killed: string; killedHeld: string[]; maxShare: number; beforeKill: Map<string, number>; terminal: Map<string, Set<string>>; ownerLog: Array<{ at: number; name: string; owner: string }>; killedAt: number },
): Promise<void> {
  const items = await listLogTails(state, ns);
  const byName = new Map(items.map((lt) => [lt.metadata.name, lt]));
  // byte-exact: each object against the simulator's record of what the container wrote
  const s3 = new S3Client({ endpoint: state.s3.endpoint, region: state.s3.region, forcePathStyle: true, credentials: { accessKeyId: state.s3.accessKey, secretAccessKey: state.s3.secretKey } });
  const notExact: string[] = [];
  for (const name of names) {
    const uri = byName.get(name)?.status?.containers?.[0]?.object?.uri;
    if (!uri) {
      notExact.push(name);
      continue;
    }
    const u = new URL(uri);
    const got = await s3.send(new GetObjectCommand({ Bucket: u.host, Key: decodeURIComponent(u.pathname.slice(1)) }));
    const want = await sha256Of(createReadStream(join(state.simDir, ns, name, 'main.log')) as AsyncIterable<Buffer>).catch(() => 'missing');
    if ((await sha256Of(got.Body as AsyncIterable<Buffer>)) !== want) notExact.push(name);
  }
  s3.destroy();
  // one finalization each: one terminal status record on the watch, one terminal Event
  const evs = await apiRequest<{ items: Array<{ reason: string; count?: number; involvedObject: { kind: string; uid?: string } }> }>(state, 'GET', `/api/v1/namespaces/${ns}/events`);
  const terminalEvents = new Map<string, number>();
  for (const e of evs.items) {
    if (e.involvedObject.kind !== 'LogTail' || !TERMINAL.has(e.reason)) continue;
    terminalEvents.set(e.involvedObject.uid ?? '', (terminalEvents.get(e.involvedObject.uid ?? '') ?? 0) + (e.count ?? 1));
  }
  let finalizations = 0;
  const notOnce: string[] = [];
  for (const name of names) {
    const n = r.terminal.get(name)?.size ?? 0;
    finalizations += n;
    const ev = terminalEvents.get(byName.get(name)?.metadata.uid ?? '') ?? 0;
    if (n !== 1 || ev !== 1) notOnce.push(`${name}(status ${n}, events ${ev})`);
  }
  const notComplete = items.filter((lt) => lt.status?.phase !== 'Complete').map((lt) => `${lt.metadata.name}=${lt.status?.phase}`);
  const after = owners(items);
  // handovers: a claim cleared by a live owner (ShardMoved), seen on the watch
  const released = r.ownerLog.filter((e, i) => e.owner === '' && r.ownerLog.slice(0, i).some((p) => p.name === e.name && p.owner !== '')).length;
  // takeover: when each LogTail the killed replica held was claimed by a survivor, from the claim's own
  // logtail.dev/owner-since (the claimant's clock, the same host as ours); a watch under this load can lag by minutes
  const takenAt = new Map<string, number>();
  for (const name of r.killedHeld) {
    const a = byName.get(name)?.metadata.annotations;
    const since = Date.parse(a?.['logtail.dev/owner-since'] ?? '');
    // a claim older than the kill: that LogTail had been handed over before it (a join), not taken over
    if (a?.[OWNER] && a[OWNER] !== r.killed && Number.isFinite(since) && since >= r.killedAt - 1000) takenAt.set(name, since);
  }
  const moved = takenAt.size;
  const takeover = [...takenAt.values()].map((t) => (t - r.killedAt) / 1000);
  const firstTakeoverS = takeover.length ? Math.min(...takeover) : Number.NaN;
  const takeoverS = takeover.length ? Math.max(...takeover) : Number.NaN;
  console.log('');
  table(['replica', 'LogTails owned while all were live', 'owned at the end'], [...new Set([...r.beforeKill.keys(), ...after.keys()])].sort().map((id) => [id || '(unowned)', r.beforeKill.get(id) ?? 0, after.get(id) ?? 0]));
  table(
    ['replicas', 'captures', 'KiB each', 'exact', 'finalizations', 'max_share', 'handovers', 'killed', 'unfinished it held', 'claims moved', 'first taken s', 'all taken s', 'seconds'],
    [[o.replicas, o.captures, o.kib, `${o.captures - notExact.length}/${o.captures}`, finalizations, r.maxShare, released, r.killed, r.killedHeld.length, moved, firstTakeoverS, takeoverS, r.secs]],
  );
  if (notExact.length) console.log(`not byte-exact: ${notExact.slice(0, 20).join(' ')}`);
  if (notOnce.length) console.log(`not finalized exactly once: ${notOnce.slice(0, 20).join(' ')}`);
  if (notComplete.length) console.log(`not Complete: ${notComplete.slice(0, 20).join(' ')}`);
  const exact = notExact.length === 0;
  console.log(`goals: every object byte-exact ${exact ? 'met' : 'NOT met'}; one finalization each ${notOnce.length === 0 ? 'met' : 'NOT met'}; max_share <= 0.5 ${r.maxShare <= 0.5 ? 'met' : 'NOT met'} (this run)`);
  finish('sharding', { options: o, secs: r.secs, handovers: released, killed: r.killed, killedHeld: r.killedHeld.length, firstTakeoverS, takeoverS, ownedBeforeKill: Object.fromEntries(r.beforeKill), ownedAtEnd: Object.fromEntries(after), notExact, notOnce, notComplete }, {
    replicas: o.replicas,
    captures: o.captures,
    exact,
    finalizations,
    max_share: r.maxShare,
  });
}
