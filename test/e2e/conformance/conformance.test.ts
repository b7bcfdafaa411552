// Simulator conformance: the same scripts on the node simulator (sim-1) and
// on a hollow kubelet (the kubelet's own code with a scripted CRI runtime),
// compared through the apiserver: the status timeline of every watch event
// (phase, conditions, per container state / lastState / restartCount / ready
// / started; times and IDs normalised) and the pods/log responses (byte for
// byte where both serve the same CRI content, timestamps normalised where
// the two runtimes stamped at different instants).
//
// Every case starts in `before`, in parallel, on both nodes; each `it` waits
// for its case and compares. Scripts use the kubelet's timings (no
// simulator-only keys): the hollow kubelet runs the same script annotation.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cluster, uniqueName, type TestCluster } from '../fixture.ts';
import { api, createNamespace } from '../simulator/helpers.ts';
import {
  SIDES,
  alignTimelines,
  createTwin,
  distinct,
  getPod,
  instantNs,
  kubeletNode,
  normError,
  podLog,
  runOf,
  sleep,
  stripPrefixes,
  twinNames,
  watchPod,
  type CStatus,
  type LogResponse,
  type Pod,
  type Side,
  type Twin,
  type Watch,
} from './twins.ts';

type PerSide<T> = Record<Side, T>;

async function bothSides<T>(f: (side: Side) => Promise<T>): Promise<PerSide<T>> {
  const [sim, kubelet] = await Promise.all(SIDES.map(f));
  return { sim: sim!, kubelet: kubelet! };
}

function app(p: Pod, name = 'app'): CStatus | undefined {
  return p.status.containerStatuses?.find((x) => x.name === name);
}

/** Polls a watch's events until one satisfies pred. */
async function waitEvent(w: Watch, what: string, pred: (p: Pod, type: string) => boolean, timeoutMs: number): Promise<Pod> {
  const end = Date.now() + timeoutMs;
  let seen = 0;
  for (;;) {
    for (; seen < w.events.length; seen++) {
      const e = w.events[seen]!;
      if (pred(e.pod, e.type)) return e.pod;
    }
    if (Date.now() > end) throw new Error(`${what}: not seen in ${timeoutMs} ms; last: ${w.events.at(-1)?.norm ?? 'no events'}`);
    await sleep(100);
  }
}

function del(c: TestCluster, ns: string, name: string, grace?: number): Promise<unknown> {
  return api(c, 'DELETE', `/api/v1/namespaces/${ns}/pods/${name}`, grace === undefined ? undefined : { gracePeriodSeconds: grace });
}


interface Timeline {
  events: string[];
  /** The distinct events with the time they arrived (ms after the watch started), for the report. */
  timed: string[];
  elapsedMs: number;
}

/**
 * Creates the twin pods with a watch on each, runs `drive` per side (it acts
 * on the pod and returns once the side's part is done), waits for DELETED.
 */
async function timeline(c: TestCluster, twin: Twin, o: Parameters<typeof createTwin>[2], drive: (side: Side, w: Watch) => Promise<void>, timeoutMs: number): Promise<PerSide<Timeline>> {
  const watches = { sim: watchPod(c, twin.ns, twin.name.sim, (e) => e.type === 'DELETED', timeoutMs), kubelet: watchPod(c, twin.ns, twin.name.kubelet, (e) => e.type === 'DELETED', timeoutMs) };
  await sleep(200); // the watches are established
  const t0 = Date.now();
  await createTwin(c, twin, o);
  return bothSides(async (side) => {
    const w = watches[side];
    try {
      await drive(side, w);
      await w.done;
    } finally {
      w.stop();
    }
    const timed = w.events.filter((e, i) => i === 0 || e.norm !== w.events[i - 1]!.norm).map((e) => `${(e.atMs / 1000).toFixed(1).padStart(6)} s  ${e.norm}`);
    return { events: distinct(w.events.map((e) => e.norm)), timed, elapsedMs: Date.now() - t0 };
  });
}

interface Samples {
  /** Normalised container state → which runs "current" and "previous" served while it was shown. */
  byState: Map<string, Set<string>>;
}

function stateKey(cs: CStatus | undefined): string {
  if (!cs) return 'none';
  const kind = Object.keys(cs.state).find((k) => cs.state[k] !== undefined) ?? '-';
  const reason = (cs.state[kind]?.reason as string | undefined) ?? '';
  const last = cs.lastState.terminated ? `last exit ${String(cs.lastState.terminated.exitCode)}` : 'no last';
  return `${kind}${reason ? ' ' + reason : ''} rc=${cs.restartCount} ${last}`;
}

/**
 * While `running()` says so, asks for the current and the previous log of
 * container `app` and keeps the answer under the container's state when the
 * status was the same before and after both requests and stayed so for the
 * next two rounds: both the kubelet and the simulator write a status after
 * the change it reports (the kubelet up to a PLEG period later), so an answer
 * taken just before the status moved on may already belong to the next state.
 */
async function sampleLogs(c: TestCluster, ns: string, name: string, running: () => boolean): Promise<Samples> {
  const rounds: { key: string | null; value: string }[] = [];
  while (running()) {
    const before = await getPod(c, ns, name);
    if (!before) break;
    const [cur, prev] = await Promise.all([podLog(c, ns, name, ''), podLog(c, ns, name, 'previous=true')]);
    const after = await getPod(c, ns, name);
    if (!after) break;
    const a = app(before);
    const b = app(after);
    const stable = stateKey(a) === stateKey(b) && a?.containerID === b?.containerID;
    rounds.push({ key: stable ? stateKey(a) : null, value: `current: ${runOf(cur, name)}; previous: ${runOf(prev, name)}` });
    await sleep(150);
  }
  const byState = new Map<string, Set<string>>();
  for (let i = 0; i + 2 < rounds.length; i++) {
    const r = rounds[i]!;
    if (r.key === null || rounds[i + 1]!.key !== r.key || rounds[i + 2]!.key !== r.key) continue;
    const set = byState.get(r.key) ?? new Set<string>();
    set.add(r.value);
    byState.set(r.key, set);
  }
  return { byState };
}

function recorded(c: TestCluster, ns: string, pod: string, file = 'app.log'): Buffer {
  return readFileSync(join(c.env.LOGTAIL_SIM_DIR!, ns, pod, file));
}

/** Per-query responses of a finished pod. */
async function queries(c: TestCluster, twin: Twin, qs: string[]): Promise<PerSide<Map<string, LogResponse>>> {
  return bothSides(async (side) => {
    const m = new Map<string, LogResponse>();
    for (const q of qs) m.set(q, await podLog(c, twin.ns, twin.name[side], q));
    return m;
  });
}

async function waitPhase(c: TestCluster, ns: string, name: string, phases: string[], timeoutMs: number): Promise<Pod> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const p = await getPod(c, ns, name);
    if (p && phases.includes(p.status.phase ?? '')) return p;
    if (Date.now() > end) throw new Error(`${ns}/${name}: not ${phases.join('/')} in ${timeoutMs} ms; last ${JSON.stringify(p?.status)}`);
    await sleep(200);
  }
}

/** Lines as [prefix instant, text] of a timestamped body (every line here starts a record). */
function stampedLines(body: Buffer): { ts: string; line: string }[] {
  const out: { ts: string; line: string }[] = [];
  const text = body.toString('latin1');
  let pos = 0;
  while (pos < text.length) {
    const nl = text.indexOf('\n', pos);
    const end = nl < 0 ? text.length : nl + 1;
    const l = text.slice(pos, end);
    const sp = l.indexOf(' ');
    out.push({ ts: l.slice(0, sp), line: l.slice(sp + 1) });
    pos = end;
  }
  return out;
}

const LONG = 'A'.repeat(40_000) + '\n';
const TAIL = 'B'.repeat(20_000);
const SHAPES = {
  containers: {
    app: {
      segments: [{ text: LONG, repeat: 2 }, { lines: 40, lineBytes: 64, linesPerSecond: 100, burst: 8 }, { text: 'an error line\n', stream: 'stderr' }, { text: TAIL }],
    },
  },
};
const SHAPE_QUERIES = [
  '',
  'follow=true',
  'timestamps=true',
  'tailLines=0',
  'tailLines=1',
  'tailLines=2',
  'tailLines=5',
  'tailLines=46',
  'tailLines=1000',
  'limitBytes=1',
  'limitBytes=100',
  'limitBytes=16385',
  'limitBytes=40001',
  'limitBytes=80003',
  'timestamps=true&tailLines=3',
  'timestamps=true&limitBytes=40100',
  'previous=true',
];

describe('simulator conformance: sim-1 against the hollow kubelet', function () {
  this.timeout(300_000);
  let c: TestCluster;
  let ns: string;
  const started = Date.now();
  const cases: Record<string, Promise<unknown>> = {};

  function start<T>(name: string, f: () => Promise<T>): void {
    const p = f();
    p.catch(() => undefined);
    cases[name] = p;
  }
  function result<T>(name: string): Promise<T> {
    return cases[name] as Promise<T>;
  }

  before(async function () {
    this.timeout(120_000);
    c = await cluster();
    kubeletNode(c);
    ns = uniqueName('conf');
    await createNamespace(c, ns);

    // Status through several CrashLoopBackOff cycles to success, then deletion; logs sampled on the way.
    start('crashloop', async () => {
      const twin = twinNames(ns, 'crash');
      let sampling = true;
      const samples: Partial<PerSide<Promise<Samples>>> = {};
      const tl = timeline(
        c,
        twin,
        { restartPolicy: 'OnFailure', script: { containers: { app: { lines: 3, lineBytes: 40, holdSeconds: 1.5, exitCodes: [1, 2, 3, 0] } } } },
        async (side, w) => {
          samples[side] = sampleLogs(c, ns, twin.name[side], () => sampling);
          await waitEvent(w, `${side} Succeeded`, (p) => p.status.phase === 'Succeeded', 150_000);
          await del(c, ns, twin.name[side]);
        },
        200_000,
      );
      const t = await tl;
      sampling = false;
      return { timeline: t, samples: { sim: await samples.sim!, kubelet: await samples.kubelet! } };
    });

    // Deleted during a back-off (the third restart's: 20 s). The kubelet shows the ended run
    // `terminated` for the back-off's length and CrashLoopBackOff only for an instant before the
    // restart (status generated at the start of the sync that restarts it), so delete while terminated.
    start('delete-in-backoff', async () => {
      const twin = twinNames(ns, 'delbo');
      return timeline(
        c,
        twin,
        { restartPolicy: 'Always', script: { containers: { app: { lines: 2, lineBytes: 40, holdSeconds: 1.5, exitCode: 1 } } } },
        async (side, w) => {
          await waitEvent(w, `${side} run 2 terminated`, (p) => app(p)?.state.terminated !== undefined && app(p)?.restartCount === 2, 120_000);
          await sleep(2000);
          await del(c, ns, twin.name[side], 3);
        },
        180_000,
      );
    });

    // Deleted while running, with a grace period.
    start('delete-running', async () => {
      const twin = twinNames(ns, 'delrun');
      return timeline(
        c,
        twin,
        { restartPolicy: 'Never', script: { containers: { app: { lines: 2, lineBytes: 40, holdSeconds: -1 } } } },
        async (side, w) => {
          await waitEvent(w, `${side} running`, (p) => app(p)?.state.running !== undefined, 60_000);
          await sleep(1000);
          await del(c, ns, twin.name[side], 2);
        },
        90_000,
      );
    });

    // An init container that fails once (OnFailure), then the main container.
    start('init-restart', async () => {
      const twin = twinNames(ns, 'init');
      return timeline(
        c,
        twin,
        {
          restartPolicy: 'OnFailure',
          initContainers: [{ name: 'setup' }],
          script: { containers: { setup: { lines: 1, lineBytes: 30, holdSeconds: 1.5, exitCodes: [1, 0] }, app: { lines: 1, lineBytes: 30, holdSeconds: 1.5 } } },
        },
        async (side, w) => {
          await waitEvent(w, `${side} Succeeded`, (p) => p.status.phase === 'Succeeded', 90_000);
          await del(c, ns, twin.name[side]);
        },
        120_000,
      );
    });

    // Never, a failure: terminal phase and the error of a previous request.
    start('never-fails', async () => {
      const twin = twinNames(ns, 'fail');
      return timeline(
        c,
        twin,
        { restartPolicy: 'Never', script: { containers: { app: { lines: 2, lineBytes: 40, holdSeconds: 1.5, exitCode: 3 } } } },
        async (side, w) => {
          await waitEvent(w, `${side} Failed`, (p) => p.status.phase === 'Failed', 60_000);
          await del(c, ns, twin.name[side]);
        },
        90_000,
      );
    });

    // Log shapes of a finished container.
    start('shapes', async () => {
      const twin = twinNames(ns, 'shapes');
      await createTwin(c, twin, { script: SHAPES });
      await bothSides((side) => waitPhase(c, ns, twin.name[side], ['Succeeded', 'Failed'], 60_000));
      return { twin, responses: await queries(c, twin, SHAPE_QUERIES) };
    });

    // sinceTime inside a burst: lines of 10 per second in bursts of 5 sharing a timestamp.
    start('since', async () => {
      const twin = twinNames(ns, 'since');
      await createTwin(c, twin, { script: { containers: { app: { lines: 40, lineBytes: 50, linesPerSecond: 10, burst: 5 } } } });
      await bothSides((side) => waitPhase(c, ns, twin.name[side], ['Succeeded', 'Failed'], 60_000));
      return bothSides(async (side) => {
        const full = await podLog(c, ns, twin.name[side], 'timestamps=true');
        const lines = stampedLines(full.body);
        // The second of the 23rd line (a burst's member); through the apiserver sinceTime has whole seconds.
        const since = new Date(Number(instantNs(lines[22]!.ts) / 1_000_000n)).toISOString().slice(0, 19) + 'Z';
        const got = await podLog(c, ns, twin.name[side], `timestamps=true&sinceTime=${since}`);
        const expected = lines.filter((l) => instantNs(l.ts) >= instantNs(since.slice(0, 19) + '.000000000Z')).map((l) => `${l.ts} ${l.line}`).join('');
        return { since, got: got.body.toString('latin1'), expected, total: lines.length };
      });
    });

    // Follow of a running container: everything, then the stream ends after the exit.
    start('follow', async () => {
      const twin = twinNames(ns, 'follow');
      await createTwin(c, twin, { script: { containers: { app: { lines: 30, lineBytes: 50, linesPerSecond: 10 } } } });
      return bothSides(async (side) => {
        const name = twin.name[side];
        const end = Date.now() + 60_000;
        while (!app((await getPod(c, ns, name)) ?? { metadata: { name, uid: '' }, status: {} })?.state.running) {
          if (Date.now() > end) throw new Error(`${side}: never running`);
          await sleep(100);
        }
        const t0 = Date.now();
        const r = await podLog(c, ns, name, 'follow=true');
        const endedMs = Date.now() - t0;
        const p = await getPod(c, ns, name);
        return { r, endedMs, recorded: recorded(c, ns, name), finishedAt: app(p!)?.state.terminated?.finishedAt };
      });
    });

    // Timestamps with an offset.
    start('offset', async () => {
      const twin = twinNames(ns, 'offset');
      await createTwin(c, twin, { script: { containers: { app: { lines: 30, lineBytes: 50, linesPerSecond: 10 } } }, faults: { timestampOffset: '-03:30' } });
      await bothSides((side) => waitPhase(c, ns, twin.name[side], ['Succeeded', 'Failed'], 60_000));
      return bothSides(async (side) => {
        const name = twin.name[side];
        const full = await podLog(c, ns, name, 'timestamps=true');
        const lines = stampedLines(full.body);
        const since = new Date(Number(instantNs(lines[15]!.ts) / 1_000_000n)).toISOString().slice(0, 19) + 'Z';
        const after = await podLog(c, ns, name, `timestamps=true&sinceTime=${since}`);
        const expected = lines.filter((l) => instantNs(l.ts) >= instantNs(since.slice(0, 19) + '.000000000Z')).map((l) => `${l.ts} ${l.line}`).join('');
        return { full, lines, after: after.body.toString('latin1'), expected, plain: await podLog(c, ns, name, ''), recorded: recorded(c, ns, name) };
      });
    });

    // Rotation (the containerLogMaxSize fault): a finished container's current file; a follow across rotations.
    start('rotation', async () => {
      const twin = twinNames(ns, 'rot');
      await createTwin(c, twin, { script: { containers: { app: { lines: 200, lineBytes: 50 } } }, faults: { containerLogMaxSize: '4Ki' } });
      await bothSides((side) => waitPhase(c, ns, twin.name[side], ['Succeeded', 'Failed'], 60_000));
      return { twin, responses: await queries(c, twin, ['', 'tailLines=3', 'tailLines=500', 'timestamps=true', 'limitBytes=1000']) };
    });
    start('rotation-follow', async () => {
      const twin = twinNames(ns, 'rotf');
      await createTwin(c, twin, { script: { containers: { app: { lines: 200, lineBytes: 50, linesPerSecond: 40 } } }, faults: { containerLogMaxSize: '2Ki' } });
      return bothSides(async (side) => {
        const name = twin.name[side];
        const end = Date.now() + 60_000;
        while (!app((await getPod(c, ns, name)) ?? { metadata: { name, uid: '' }, status: {} })?.state.running) {
          if (Date.now() > end) throw new Error(`${side}: never running`);
          await sleep(50);
        }
        const r = await podLog(c, ns, name, 'follow=true');
        await waitPhase(c, ns, name, ['Succeeded', 'Failed'], 60_000);
        return { r, recorded: recorded(c, ns, name), plain: await podLog(c, ns, name, '') };
      });
    });
  });

  after(() => {
    console.log(`      conformance suite: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });

  function compareTimelines(t: PerSide<Timeline>): void {
    console.log(`      sim ${(t.sim.elapsedMs / 1000).toFixed(1)} s, kubelet ${(t.kubelet.elapsedMs / 1000).toFixed(1)} s`);
    if (process.env.LOGTAIL_CONFORMANCE_VERBOSE) for (const side of SIDES) console.log(`      ${side}:\n${t[side].timed.map((x) => '        ' + x).join('\n')}`);
    const a = alignTimelines(t.sim.events, t.kubelet.events);
    if (a.skipped.length > 0) console.log(`      not written by the kubelet this time (optional):\n${a.skipped.map((x) => '        ' + x).join('\n')}`);
    if (a.mismatch) {
      expect.fail(`${a.mismatch}\n\nsimulator:\n${t.sim.timed.join('\n')}\n\nkubelet:\n${t.kubelet.timed.join('\n')}`);
    }
  }

  it('status timeline: OnFailure through three CrashLoopBackOff cycles to Succeeded, then deletion', async () => {
    const r = await result<{ timeline: PerSide<Timeline> }>('crashloop');
    compareTimelines(r.timeline);
  });

  it('logs during the cycles: which run "current" and "previous" serve in each state (terminated, back-off, running)', async () => {
    const r = await result<{ samples: PerSide<Samples> }>('crashloop');
    const sim = r.samples.sim.byState;
    const kub = r.samples.kubelet.byState;
    const fmt = (m: Map<string, Set<string>>) => [...m.entries()].map(([k, v]) => `${k} => ${[...v].sort().join(' | ')}`).sort();
    console.log(`      kubelet samples:\n${fmt(kub).map((x) => '        ' + x).join('\n')}`);
    // Both must have seen the state that decides where bytes go: run k ≥ 1 terminated,
    // during its back-off. (CrashLoopBackOff itself shows on the kubelet only for an
    // instant before the restart: compared when both sides happened to sample it.)
    for (const [side, m] of [['sim', sim], ['kubelet', kub]] as const) {
      expect([...m.keys()].some((k) => k.startsWith('terminated Error') && !k.includes('rc=0')), `${side}: a terminated state after a restart was sampled`).to.equal(true);
    }
    const only = (a: Map<string, Set<string>>, b: Map<string, Set<string>>) => [...a.keys()].filter((k) => !b.has(k));
    console.log(`      sampled only on the kubelet: ${JSON.stringify(only(kub, sim))}; only on the simulator: ${JSON.stringify(only(sim, kub))}`);
    // What the simulator served in a state must be among what the kubelet served in it.
    const common = [...kub.keys()].filter((k) => sim.has(k));
    const wrong = common.flatMap((k) => [...sim.get(k)!].filter((v) => !kub.get(k)!.has(v)).map((v) => `${k}: the simulator served "${v}", the kubelet only ${JSON.stringify([...kub.get(k)!])}`));
    expect(wrong).to.deep.equal([]);
    expect(common.length).to.be.greaterThan(3);
  });

  it('status timeline: Always, deleted with a grace period during a back-off', async () => {
    compareTimelines(await result<PerSide<Timeline>>('delete-in-backoff'));
  });

  it('status timeline: Never, deleted with a grace period while running', async () => {
    compareTimelines(await result<PerSide<Timeline>>('delete-running'));
  });

  it('status timeline: an init container that fails once under OnFailure', async () => {
    compareTimelines(await result<PerSide<Timeline>>('init-restart'));
  });

  it('status timeline: Never, exit 3 → Failed', async () => {
    compareTimelines(await result<PerSide<Timeline>>('never-fails'));
  });

  it('logs of a finished container: >16 KiB lines, a burst, stderr, a last line without newline; tailLines, limitBytes, follow, previous — byte for byte', async () => {
    const { twin, responses } = await result<{ twin: Twin; responses: PerSide<Map<string, LogResponse>> }>('shapes');
    const diffs: string[] = [];
    for (const q of SHAPE_QUERIES) {
      const s = responses.sim.get(q)!;
      const k = responses.kubelet.get(q)!;
      const show = (r: LogResponse, name: string) => (r.status === 200 ? (q.includes('timestamps') ? stripPrefixes(r.body).text : r.body.toString('latin1')) : normError(r, name));
      const a = show(s, twin.name.sim);
      const b = show(k, twin.name.kubelet);
      if (a !== b || s.status !== k.status) diffs.push(`${q || '(plain)'}: sim ${s.status} ${s.body.length} B ${JSON.stringify(a.slice(0, 160))} / kubelet ${k.status} ${k.body.length} B ${JSON.stringify(b.slice(0, 160))}`);
    }
    // Both recorded the same bytes, and serve them.
    expect(recorded(c, ns, twin.name.kubelet).equals(recorded(c, ns, twin.name.sim))).to.equal(true);
    expect(responses.kubelet.get('')!.body.equals(recorded(c, ns, twin.name.kubelet))).to.equal(true);
    expect(diffs).to.deep.equal([]);
  });

  it('sinceTime inside a burst: records from that instant on, on both', async () => {
    const r = await result<PerSide<{ since: string; got: string; expected: string; total: number }>>('since');
    for (const side of SIDES) {
      expect(r[side].got, `${side} (sinceTime ${r[side].since})`).to.equal(r[side].expected);
      expect(r[side].expected.length).to.be.greaterThan(0);
    }
  });

  it('follow of a running container: every byte, and the stream ends once the container has exited', async () => {
    const r = await result<PerSide<{ r: LogResponse; endedMs: number; recorded: Buffer }>>('follow');
    console.log(`      follow ended after: sim ${r.sim.endedMs} ms, kubelet ${r.kubelet.endedMs} ms`);
    for (const side of SIDES) {
      expect(r[side].r.status).to.equal(200);
      expect(r[side].r.body.equals(r[side].recorded), `${side}: follow = recorded`).to.equal(true);
    }
    expect(r.sim.r.body.equals(r.kubelet.r.body)).to.equal(true);
  });

  it('timestampOffset -03:30: 35-byte prefixes, content byte for byte, sinceTime in UTC compares instants', async () => {
    const r = await result<PerSide<{ full: LogResponse; lines: { ts: string; line: string }[]; after: string; expected: string; plain: LogResponse; recorded: Buffer }>>('offset');
    for (const side of SIDES) {
      expect(r[side].lines.every((l) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}-03:30$/.test(l.ts)), `${side}: every prefix -03:30`).to.equal(true);
      expect(r[side].after, `${side}: sinceTime`).to.equal(r[side].expected);
      expect(r[side].plain.body.equals(r[side].recorded)).to.equal(true);
    }
    expect(stripPrefixes(r.sim.full.body).text).to.equal(stripPrefixes(r.kubelet.full.body).text);
  });

  it('rotation: a new request reads only the current file (byte for byte); a follow stream continues across rotations', async () => {
    const { twin, responses } = await result<{ twin: Twin; responses: PerSide<Map<string, LogResponse>> }>('rotation');
    const diffs: string[] = [];
    for (const [q, s] of responses.sim) {
      const k = responses.kubelet.get(q)!;
      const a = q.includes('timestamps') ? stripPrefixes(s.body).text : s.body.toString('latin1');
      const b = q.includes('timestamps') ? stripPrefixes(k.body).text : k.body.toString('latin1');
      if (a !== b || s.status !== k.status) diffs.push(`${q || '(plain)'}: sim ${s.status} ${s.body.length} B, kubelet ${k.status} ${k.body.length} B`);
    }
    expect(diffs).to.deep.equal([]);
    const rec = recorded(c, ns, twin.name.kubelet);
    expect(responses.kubelet.get('')!.body.length).to.be.lessThan(rec.length); // it did rotate
    const f = await result<PerSide<{ r: LogResponse; recorded: Buffer; plain: LogResponse }>>('rotation-follow');
    for (const side of SIDES) {
      // The follow starts while the container runs, possibly after a rotation: it reads the
      // current file from its start and everything after it, across the later rotations.
      const got = f[side].r.body;
      const rec2 = f[side].recorded;
      const tail = rec2.subarray(rec2.length - got.length);
      expect(tail.equals(got), `${side}: follow = the end of the recorded output (${got.length} B of ${rec2.length} B; starts ${JSON.stringify(got.subarray(0, 40).toString())})`).to.equal(true);
      expect(got.length, `${side}: the follow crossed several rotations (2 KiB of CRI file each)`).to.be.greaterThan(6000);
      expect(f[side].plain.body.length, `${side}: rotated`).to.be.lessThan(f[side].recorded.length);
    }
    expect(f.sim.plain.body.equals(f.kubelet.plain.body)).to.equal(true);
  });
});
