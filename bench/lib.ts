// Shared pieces of the benchmarks: options, a cluster per run, the operator as
// a child process, CPU and RSS from /proc, a raw HTTPS watch, statistics and
// the result files (bench/results/NAME-TIME.json, one `BENCH name k=v …` line).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT, down, kubectl, up, type ClusterState } from '../src/dev/cluster.ts';
import { freePort, sleep } from '../src/dev/proc.ts';

export { REPO_ROOT, kubectl, sleep, type ClusterState };

export interface OptionDef {
  default: number | string;
  help: string;
}

/** `--name value` options with defaults; `--help` prints them and exits. */
export function parseOptions<T extends Record<string, OptionDef>>(bench: string, argv: string[], defs: T): { [K in keyof T]: T[K]['default'] } {
  if (argv.includes('--help') || argv.includes('-h')) {
    const lines = [`npm run bench -- ${bench} [options]`, ''];
    for (const [k, d] of Object.entries(defs)) lines.push(`  --${k.padEnd(16)} ${d.help} (default ${d.default})`);
    console.log(lines.join('\n'));
    process.exit(0);
  }
  const out: Record<string, number | string> = {};
  for (const [k, d] of Object.entries(defs)) {
    const i = argv.indexOf(`--${k}`);
    if (i < 0) {
      out[k] = d.default;
      continue;
    }
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`--${k} needs a value`);
    if (typeof d.default === 'number') {
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0) throw new Error(`--${k}: expected a positive number, got ${v}`);
      out[k] = n;
    } else {
      out[k] = v;
    }
  }
  for (const a of argv) {
    if (a.startsWith('--') && !(a.slice(2) in defs)) throw new Error(`unknown option ${a} (see --help)`);
  }
  return out as { [K in keyof T]: T[K]['default'] };
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The q-quantile (0..1) by the nearest-rank method. */
export function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

export function spread(xs: number[]): string {
  if (xs.length === 0) return '-';
  return `${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)}`;
}

export function rssKiB(pid: number): number {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/);
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** user+system CPU seconds of a live process (children not included). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // the command name may hold spaces: fields after the closing parenthesis
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 here; ticks of 1/100 s on Linux
  return (Number(f[11]) + Number(f[12])) / 100;
}

export function machine(): { cpus: number; model: string; node: string; loadavg: number[] } {
  return { cpus: cpus().length, model: cpus()[0]?.model ?? '?', node: process.version, loadavg: loadavg().map((x) => Math.round(x * 100) / 100) };
}

export function load1(): number {
  return Math.round(loadavg()[0]! * 100) / 100;
}

/** Writes bench/results/NAME-TIMESTAMP.json and prints the one BENCH line last. */
export function finish(name: string, result: Record<string, unknown>, line: Record<string, string | number | boolean>): void {
  // LOGTAIL_BENCH_RESULTS: another directory (the correctness checks in the tests use a temporary one)
  const dir = process.env.LOGTAIL_BENCH_RESULTS ?? join(REPO_ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ bench: name, at: new Date().toISOString(), argv: process.argv.slice(2), machine: machine(), ...result, bench_line: line }, null, 2) + '\n');
  console.log(`results: ${file}`);
  const fmt = (v: string | number | boolean) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(3)) : String(v));
  console.log(`BENCH ${name} ${Object.entries(line).map(([k, v]) => `${k}=${fmt(v)}`).join(' ')}`);
}

export function table(header: string[], rows: Array<Array<string | number>>): void {
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? (Number.isInteger(c) ? String(c) : c.toFixed(2)) : c)))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)));
  for (const [n, r] of cells.entries()) {
    console.log(r.map((c, i) => String(c).padEnd(widths[i]!)).join('  '));
    if (n === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
}

/** Runs fn against a fresh local control plane in a temporary directory, always taken down. */
export async function withCluster<T>(fn: (state: ClusterState, dir: string) => Promise<T>, nodes?: string[]): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'logtail-bench-'));
  const state = await up({ dir, log: (m) => process.stderr.write(m + '\n'), ...(nodes ? { nodes } : {}) });
  let ok = false;
  try {
    await kubectl(state, ['apply', '--server-side', '-f', join(REPO_ROOT, 'crds', 'logtail.dev_logtails.yaml')]);
    await kubectl(state, ['wait', '--for=condition=Established', 'crd/logtails.logtail.dev', '--timeout=60s']);
    const result = await fn(state, dir);
    ok = true;
    return result;
  } finally {
    await down(dir);
    // A run's directory holds every container's recording and the file store (gigabytes for the bigger runs):
    // removed after a run that succeeded, kept for a failed one or with LOGTAIL_BENCH_KEEP=1.
    if (ok && !process.env.LOGTAIL_BENCH_KEEP) rmSync(dir, { recursive: true, force: true });
    else process.stderr.write(`bench: kept ${dir}\n`);
  }
}

export interface Operator {
  proc: ChildProcess;
  pid: number;
  port: number;
  stop(): Promise<void>;
}

/**
 * The operator as a child process: src/cmd/main.ts (type-stripped, as
 * `npm start` runs it) unless `entry` names another, e.g. the compiled
 * dist/src/cmd/main.js the image runs.
 */
export async function startOperator(state: ClusterState, dir: string, o: { name: string; store: string; args?: string[]; env?: Record<string, string>; entry?: string; wrap?: string[] }): Promise<Operator> {
  const port = await freePort();
  const fd = openSync(join(dir, `${o.name}.log`), 'a');
  const entry = o.entry ?? join(REPO_ROOT, 'src', 'cmd', 'main.ts');
  const args = [entry, '--store', o.store, '--http-addr', `127.0.0.1:${port}`, '--log-level', 'warn', ...(o.args ?? [])];
  // `wrap`: a command the operator runs under (e.g. heaptrack); its pid is then the wrapper's child, found below
  const proc = o.wrap?.length ? spawn(o.wrap[0]!, [...o.wrap.slice(1), process.execPath, ...args], { stdio: ['ignore', fd, fd], env: { ...process.env, ...state.env, ...(o.env ?? {}) } }) : spawn(process.execPath, args, { stdio: ['ignore', fd, fd], env: { ...process.env, ...state.env, ...(o.env ?? {}) } });
  closeSync(fd);
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`operator ${o.name} exited ${proc.exitCode}; see ${join(dir, `${o.name}.log`)}`);
    try {
      if ((await fetch(`http://127.0.0.1:${port}/readyz`)).ok) break;
    } catch {
      /* starting */
    }
    if (Date.now() > deadline) throw new Error(`operator ${o.name} not ready after 60 s`);
    await sleep(100);
  }
  const pid = o.wrap?.length ? (descendantRunning(proc.pid!, process.execPath) ?? proc.pid!) : proc.pid!;
  return {
    proc,
    pid,
    port,
    stop: async () => {
      // under a wrapper: stop the operator itself and give the wrapper time to write its output
      if (proc.exitCode === null) {
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          /* gone */
        }
      }
      // a timer that does not keep the bench alive (and its lock held) once the operator has exited
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exited, new Promise<void>((r) => (timer = setTimeout(r, o.wrap?.length ? 300_000 : 25_000)))]);
      clearTimeout(timer);
      if (proc.exitCode === null) proc.kill('SIGKILL');
    },
  };
}

/** The first process under `pid` (depth first) whose executable is `exe`: the operator under a wrapper. */
function descendantRunning(pid: number, exe: string): number | undefined {
  const kids = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      kids.set(ppid, [...(kids.get(ppid) ?? []), Number(d)]);
    } catch {
      /* gone */
    }
  }
  const walk = (p: number): number | undefined => {
    for (const c of kids.get(p) ?? []) {
      try {
        if (realpathSync(`/proc/${c}/exe`) === realpathSync(exe)) return c;
      } catch {
        /* gone */
      }
      const found = walk(c);
      if (found) return found;
    }
    return undefined;
  };
  return walk(pid);
}

/** GET or POST to the apiserver with the cluster's admin token, JSON in and out. */
export function apiRequest<T>(state: ClusterState, method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
  const ca = readFileSync(state.caFile);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(`${state.apiserverUrl}${path}`, { method, ca, headers: { Authorization: `Bearer ${state.token}`, Accept: 'application/json', ...(body ? { 'Content-Type': contentType } : {}) } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (b: Buffer) => parts.push(b));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString();
        if ((res.statusCode ?? 500) >= 300) reject(new Error(`${method} ${path}: ${res.statusCode} ${text.slice(0, 300)}`));
        else resolve((String(res.headers['content-type']).includes('json') ? JSON.parse(text) : text) as T);
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

export interface WatchEvent {
  type: string;
  object: { metadata: { name: string; namespace?: string; resourceVersion?: string }; status?: Record<string, unknown> } & Record<string, unknown>;
}

/**
 * A raw watch (newline-delimited JSON), each event handed to onEvent with the
 * local time it arrived. Re-opened when the server ends it or it fails; a new
 * watch starts with ADDED events for what exists, so an object that changed
 * during the gap is seen late (later times, never earlier).
 */
export function watch(state: ClusterState, path: string, onEvent: (ev: WatchEvent, atMs: number) => void): { close(): void } {
  const ca = readFileSync(state.caFile);
  const sep = path.includes('?') ? '&' : '?';
  let closed = false;
  let req: ReturnType<typeof httpsRequest> | undefined;
  const reopen = () => {
    if (!closed) setTimeout(open, 500);
  };
  const open = () => {
    if (closed) return;
    req = httpsRequest(`${state.apiserverUrl}${path}${sep}watch=true`, { ca, headers: { Authorization: `Bearer ${state.token}` } }, (res) => {
      let buf = '';
      res.setEncoding('utf8');
      if (res.statusCode !== 200) process.stderr.write(`watch ${path}: HTTP ${res.statusCode}; re-opening\n`);
      res.on('data', (s: string) => {
        const at = Date.now();
        buf += s;
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.trim()) onEvent(JSON.parse(line) as WatchEvent, at);
        }
      });
      res.on('end', reopen);
      res.on('error', () => undefined);
    });
    req.on('error', (err) => {
      if (closed) return;
      process.stderr.write(`watch ${path}: ${String(err)}; re-opening\n`);
      reopen();
    });
    req.end();
  };
  open();
  return {
    close: () => {
      closed = true;
      req?.destroy();
    },
  };
}

export async function applyJson(state: ClusterState, obj: unknown): Promise<void> {
  const r = await kubectl(state, ['apply', '-f', '-'], { input: JSON.stringify(obj) });
  if (r.code !== 0) throw new Error(r.stderr);
}

export function simPod(ns: string, name: string, script: unknown, extra: Record<string, unknown> = {}): unknown {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: ns, annotations: { 'sim.logtail.dev/script': JSON.stringify(script) } },
    spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: 'x' }], ...extra },
  };
}

export function logTail(ns: string, name: string, spec: Record<string, unknown>): unknown {
  return { apiVersion: 'logtail.dev/v1alpha1', kind: 'LogTail', metadata: { name, namespace: ns }, spec };
}
