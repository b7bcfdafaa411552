// npm run bench -- stream [--mib 200 --rounds 3]
// One big log through the real apiserver, read four ways in rotating order on
// the same cluster in one run (issue 11 item 4):
//   kubectl      the built `kubectl logs -f --timestamps > file`
//   bare         bench/bare-read.ts: https.get, sha256 per chunk, file write with backpressure
//   operator     the operator (src/cmd/main.ts) into its file store, LogTail created → Complete
//   operator_s3  the same into the S3 server (versitygw)
// Rates are wire MiB/s (the bytes the apiserver sent, timestamps included);
// CPU-seconds per 100 MiB of wire bytes for the reading process.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, openSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { apiRequest, applyJson, cpuSeconds, finish, kubectl, load1, logTail, median, parseOptions, simPod, sleep, spread, startOperator, table, watch, withCluster, type ClusterState, type Operator } from './lib.ts';

const VARIANTS = ['kubectl', 'bare', 'operator', 'operator_s3'] as const;
type Variant = (typeof VARIANTS)[number];
interface Sample {
  round: number;
  variant: Variant;
  wireBytes: number;
  secs: number;
  cpuS: number;
  load1: number;
  exact?: boolean;
  /** Operator variants: the create request's duration and the operator's step lines (ms after the create was sent). */
  createMs?: number;
  steps?: Step[];
  /** One `kubectl apply` of a small object in that round (the earlier way of creating the LogTail), not counted. */
  kubectlApplyMs?: number;
}

const LINE = 200;
const TS_PREFIX = 31; // "2026-11-29T10:00:00.123456789Z "

async function waitPodDone(state: ClusterState, ns: string, name: string): Promise<void> {
  for (;;) {
    const pod = await apiRequest<{ status?: { phase?: string } }>(state, 'GET', `/api/v1/namespaces/${ns}/pods/${name}`).catch(() => undefined);
    const phase = pod?.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') return;
    await sleep(200);
  }
}

/** sha256 of a timestamped log with each line's timestamp prefix removed (what the operator stores by default). */
async function strippedSha(file: string): Promise<string> {
  const h = createHash('sha256');
  let skip = TS_PREFIX;
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    let pos = 0;
    while (pos < chunk.length) {
      if (skip > 0) {
        const n = Math.min(skip, chunk.length - pos);
        skip -= n;
        pos += n;
        continue;
      }
      const nl = chunk.indexOf(10, pos);
      if (nl < 0) {
        h.update(chunk.subarray(pos));
        break;
      }
      h.update(chunk.subarray(pos, nl + 1));
      pos = nl + 1;
      skip = TS_PREFIX;
    }
  }
  return h.digest('hex');
}

async function runKubectl(state: ClusterState, dir: string, ns: string, pod: string): Promise<{ bytes: number; secs: number; cpuS: number }> {
  const out = join(dir, `${pod}.log`);
  const ofd = openSync(out, 'w');
  // bash's `times` prints the CPU of its finished children: kubectl's own
  const script = `"$0" logs -f --timestamps "$1" -n "$2" >&3; rc=$?; times >&2; exit $rc`;
  const t0 = performance.now();
  const child = spawn('bash', ['-c', script, join(state.bin, 'kubectl'), pod, ns], { stdio: ['ignore', 'ignore', 'pipe', ofd], env: { ...process.env, KUBECONFIG: state.kubeconfigPath } });
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  const secs = (performance.now() - t0) / 1000;
  closeSync(ofd);
  if (code !== 0) throw new Error(`kubectl logs exited ${code}: ${err}`);
  const times = err.trim().split('\n').pop()!.match(/(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s/);
  if (!times) throw new Error(`no times output: ${err}`);
  const cpuS = Number(times[1]) * 60 + Number(times[2]) + Number(times[3]) * 60 + Number(times[4]);
  return { bytes: statSync(out).size, secs, cpuS };
}

async function runBare(state: ClusterState, dir: string, ns: string, pod: string): Promise<{ bytes: number; secs: number; cpuS: number; file: string }> {
  const out = join(dir, `${pod}.log`);
  const url = `${state.apiserverUrl}/api/v1/namespaces/${ns}/pods/${pod}/log?container=main&timestamps=true&follow=true`;
  const child = spawn(process.execPath, [join(import.meta.dirname, 'bare-read.ts'), url, state.caFile, state.token, out], { stdio: ['ignore', 'pipe', 'inherit'] });
  let text = '';
  child.stdout!.on('data', (b: Buffer) => (text += b.toString()));
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  if (code !== 0) throw new Error(`bare read exited ${code}`);
  const r = JSON.parse(text) as { bytes: number; secs: number; cpuS: number };
  return { ...r, file: out };
}

interface LogTailStatus {
  status?: { phase?: string; bytes?: number; containers?: Array<{ object?: { sha256?: string } }> };
}

/** One `capture step` debug line of the operator (src/runtime/capture-daemon.ts step()), ms after the LogTail's create request was sent. */
export interface Step {
  step: string;
  ms: number;
}

/** The operator's step lines for LogTail `name` in its log file, relative to `t0` (epoch ms). */
export function stepsOf(logFile: string, name: string, t0: number): Step[] {
  const out: Step[] = [];
  let text: string;
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    if (!line.includes('"capture step"') || !line.includes(`"name":"${name}"`)) continue;
    try {
      const j = JSON.parse(line) as { step?: string; at?: number; name?: string; verdict?: string; tailLines?: number };
      if (j.name !== name || typeof j.at !== 'number' || !j.step) continue;
      const what = j.step + (j.tailLines !== undefined ? ` (tailLines=${j.tailLines})` : '') + (j.verdict ? ` → ${j.verdict}` : '');
      out.push({ step: what, ms: j.at - t0 });
    } catch {
      /* a line cut by the copy */
    }
  }
  return out;
}

/**
 * The operator's time for one capture: from sending the LogTail's create
 * request (one POST, not a kubectl process) to the arrival of the watch
 * event that shows it `Complete` (a watch opened before the create, so no
 * poll interval is added).
 */
async function runOperator(state: ClusterState, op: Operator, ns: string, pod: string): Promise<{ contentBytes: number; secs: number; cpuS: number; sha256: string; createMs: number; t0: number }> {
  let resolveDone!: (v: { lt: LogTailStatus; at: number }) => void;
  let rejectDone!: (e: Error) => void;
  const done = new Promise<{ lt: LogTailStatus; at: number }>((res, rej) => ((resolveDone = res), (rejectDone = rej)));
  const w = watch(state, `/apis/logtail.dev/v1alpha1/namespaces/${ns}/logtails?fieldSelector=metadata.name%3D${pod}`, (ev, at) => {
    const lt = ev.object as LogTailStatus;
    const phase = lt.status?.phase;
    if (phase === 'Complete') resolveDone({ lt, at });
    else if (phase === 'Failed' || phase === 'Incomplete') rejectDone(new Error(`operator capture ${ns}/${pod} ended ${phase}`));
  });
  try {
    // the watch is open before the create (not counted)
    await sleep(300);
    const cpu0 = cpuSeconds(op.pid);
    const t0 = Date.now();
    await apiRequest(state, 'POST', `/apis/logtail.dev/v1alpha1/namespaces/${ns}/logtails`, logTail(ns, pod, { podName: pod }));
    const createMs = Date.now() - t0;
    const { lt, at } = await done;
    return { contentBytes: lt.status!.bytes ?? 0, secs: (at - t0) / 1000, cpuS: cpuSeconds(op.pid) - cpu0, sha256: lt.status!.containers?.[0]?.object?.sha256 ?? '', createMs, t0 };
  } finally {
    w.close();
  }
}

export async function streamBench(argv: string[]): Promise<void> {
  const o = parseOptions('stream', argv, {
    mib: { default: 200, help: 'MiB of log content per capture (200-byte lines; the wire carries 231/200 of it with timestamps)' },
    rounds: { default: 3, help: 'rounds; each reads one fresh pod per variant, the order rotating each round' },
  });
  const lines = Math.floor((o.mib * 1024 * 1024) / LINE);
  const script = { containers: { main: { lines, lineBytes: LINE, linesPerSecond: 50_000_000, exitCode: 0 } } };
  await withCluster(async (state, dir) => {
    const nsFor: Record<Variant, string> = { kubectl: 'stream', bare: 'stream', operator: 'stream-file', operator_s3: 'stream-s3' };
    for (const ns of new Set(Object.values(nsFor))) await kubectl(state, ['create', 'namespace', ns]);
    // debug: the operators log each capture's steps (`capture step`), read back per sample below
    const opFile = await startOperator(state, dir, { name: 'op-file', store: `file://${join(dir, 'store')}`, args: ['--watch-namespaces', 'stream-file', '--log-level', 'debug'] });
    const opS3 = await startOperator(state, dir, { name: 'op-s3', store: `s3://${state.s3.bucket}/bench`, args: ['--watch-namespaces', 'stream-s3', '--s3-endpoint', state.s3.endpoint, '--log-level', 'debug'] });
    const samples: Sample[] = [];
    let expectedSha = '';
    let wire = 0;
    try {
      for (let round = 1; round <= o.rounds; round++) {
        const order = VARIANTS.map((_, i) => VARIANTS[(i + round - 1) % VARIANTS.length]!);
        for (const variant of order) {
          const ns = nsFor[variant];
          const pod = `${variant.replace('_', '-')}-${round}`;
          await applyJson(state, simPod(ns, pod, script));
          await waitPodDone(state, ns, pod);
          const l = load1();
          let s: Sample;
          if (variant === 'kubectl') {
            const r = await runKubectl(state, dir, ns, pod);
            s = { round, variant, wireBytes: r.bytes, secs: r.secs, cpuS: r.cpuS, load1: l };
          } else if (variant === 'bare') {
            const r = await runBare(state, dir, ns, pod);
            s = { round, variant, wireBytes: r.bytes, secs: r.secs, cpuS: r.cpuS, load1: l };
            wire = r.bytes;
            if (!expectedSha) expectedSha = await strippedSha(r.file);
          } else {
            const r = await runOperator(state, variant === 'operator' ? opFile : opS3, ns, pod);
            // the stored content has no timestamps: the wire carried 31 more bytes per line
            s = { round, variant, wireBytes: r.contentBytes + TS_PREFIX * lines, secs: r.secs, cpuS: r.cpuS, load1: l, exact: expectedSha ? r.sha256 === expectedSha : undefined, createMs: r.createMs };
            // the last lines may still be on their way to the file
            await sleep(200);
            s.steps = stepsOf(join(dir, variant === 'operator' ? 'op-file.log' : 'op-s3.log'), pod, r.t0);
            for (const st of s.steps) console.log(`    ${String(st.ms).padStart(6)} ms  ${st.step}`);
            console.log(`    ${String(Math.round(r.secs * 1000)).padStart(6)} ms  Complete seen by the bench's watch (create request took ${r.createMs} ms)`);
          }
          if (s.variant === 'operator') {
            // What the earlier measurement (LogTail created with `kubectl apply`) spent before the create reached the
            // apiserver: one `kubectl apply` of a small object, timed here and not counted in any figure.
            const k0 = Date.now();
            await applyJson(state, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `apply-timing-${round}`, namespace: ns }, data: { a: 'b' } });
            s.kubectlApplyMs = Date.now() - k0;
            console.log(`    (one kubectl apply of a ConfigMap took ${s.kubectlApplyMs} ms; not counted)`);
          }
          samples.push(s);
          const mib = s.wireBytes / 1048576;
          console.log(`round ${round} ${variant.padEnd(11)} ${mib.toFixed(1)} MiB in ${s.secs.toFixed(2)} s = ${(mib / s.secs).toFixed(1)} MiB/s, ${((s.cpuS * 100) / mib).toFixed(2)} CPU-s/100 MiB, load ${l}`);
          await kubectl(state, ['delete', 'pod', pod, '-n', ns, '--wait=false']);
        }
      }
    } finally {
      await opFile.stop();
      await opS3.stop();
    }
    report(samples, wire, o);
  });
}

function report(samples: Sample[], wire: number, o: { mib: number; rounds: number }): void {
  const rate = (s: Sample) => s.wireBytes / 1048576 / s.secs;
  const cpu = (s: Sample) => (s.cpuS * 100) / (s.wireBytes / 1048576);
  const by = (v: Variant) => samples.filter((s) => s.variant === v);
  const med: Record<string, number> = {};
  const rows = VARIANTS.map((v) => {
    const rs = by(v).map(rate);
    const cs = by(v).map(cpu);
    med[v] = median(rs);
    return [v, median(rs), spread(rs), median(cs), spread(cs), by(v).map((s) => s.round + ':' + rate(s).toFixed(1)).join(' ')];
  });
  console.log('');
  table(['variant', 'MiB/s median', 'MiB/s spread', 'CPU-s/100MiB median', 'CPU spread', 'per round'], rows);
  const wrong = samples.filter((s) => s.exact === false || (s.variant !== 'bare' && s.variant.startsWith('operator') && s.wireBytes !== wire) || (s.variant === 'kubectl' && s.wireBytes !== wire));
  const exact = wrong.length === 0 && samples.every((s) => !s.variant.startsWith('operator') || s.exact === true);
  const ratioBare = med.operator! / med.bare!;
  const ratioKubectl = med.operator! / med.kubectl!;
  console.log(`wire bytes per capture ${wire}; all captures byte-exact and complete: ${exact}`);
  console.log(`goal: operator ≥ 0.9 × bare (${ratioBare.toFixed(2)}: ${ratioBare >= 0.9 ? 'met' : 'NOT met'}), ≥ 1.5 × kubectl (${ratioKubectl.toFixed(2)}: ${ratioKubectl >= 1.5 ? 'met' : 'NOT met'}) in this run`);
  finish('stream', { options: o, wireBytes: wire, exact, samples }, {
    kubectl_mib_s: med.kubectl!,
    bare_mib_s: med.bare!,
    operator_mib_s: med.operator!,
    operator_s3_mib_s: med.operator_s3!,
    ratio_bare: ratioBare,
    ratio_kubectl: ratioKubectl,
  });
}
