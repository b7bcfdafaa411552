// npm run bench [-- --mib 200 --rounds 3]
// One big log through the real apiserver, captured two ways in alternating
// rounds on the same cluster: the built `kubectl logs -f --timestamps > file`,
// and the operator into its filesystem store (LogTail created → Complete).
// Prints MiB/s per round, medians, the ratio, and the operator's peak RSS.
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeApi } from '../src/adapters/kube-api.ts';
import { REPO_ROOT, down, kubectl, up, type ClusterState } from '../src/dev/cluster.ts';
import { freePort, sleep } from '../src/dev/proc.ts';

const argv = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : dflt;
};
const MIB = opt('mib', 200);
const ROUNDS = opt('rounds', 5);
const LINE = 200;
const LINES = Math.floor((MIB * 1024 * 1024) / LINE);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function rssKiB(pid: number): number {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/);
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

async function waitPodDone(state: ClusterState, ns: string, name: string): Promise<void> {
  for (;;) {
    const r = await kubectl(state, ['get', 'pod', name, '-n', ns, '-o', 'jsonpath={.status.phase}']);
    if (r.stdout === 'Succeeded' || r.stdout === 'Failed') return;
    await sleep(200);
  }
}

async function makePod(state: ClusterState, ns: string, name: string): Promise<void> {
  // linesPerSecond far above what can be read: the whole log exists almost at
  // once, so both readers are limited by the path, not by the container.
  const script = { containers: { main: { lines: LINES, lineBytes: LINE, linesPerSecond: 50_000_000, exitCode: 0 } } };
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: ns, annotations: { 'sim.logtail.dev/script': JSON.stringify(script) } }, spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: 'x' }] } };
  const r = await kubectl(state, ['apply', '-f', '-'], { input: JSON.stringify(pod) });
  if (r.code !== 0) throw new Error(r.stderr);
  await waitPodDone(state, ns, name);
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'logtail-bench-'));
  const state = await up({ dir, log: (m) => process.stderr.write(m + '\n') });
  let op: ReturnType<typeof spawn> | undefined;
  try {
    const ns = 'bench';
    await kubectl(state, ['create', 'namespace', ns]);
    await kubectl(state, ['apply', '--server-side', '-f', join(REPO_ROOT, 'crds', 'logtail.dev_logtails.yaml')]);
    await kubectl(state, ['wait', '--for=condition=Established', 'crd/logtails.logtail.dev', '--timeout=60s']);
    const storeDir = join(dir, 'store');
    const port = await freePort();
    const fd = openSync(join(dir, 'operator.log'), 'a');
    op = spawn(process.execPath, [join(REPO_ROOT, 'src', 'cmd', 'main.ts'), '--store', `file://${storeDir}`, '--http-addr', `127.0.0.1:${port}`, '--log-level', 'warn'], { stdio: ['ignore', fd, fd], env: { ...process.env, ...state.env } });
    closeSync(fd);
    for (;;) {
      try {
        if ((await fetch(`http://127.0.0.1:${port}/readyz`)).ok) break;
      } catch {
        /* starting */
      }
      await sleep(100);
    }
    const kc = new KubeConfig();
    kc.loadFromFile(state.kubeconfigPath);
    const api = new KubeApi(kc);
    const kubectlRates: number[] = [];
    const operatorRates: number[] = [];
    let peakRss = 0;
    const baseRss = rssKiB(op.pid!);
    for (let round = 1; round <= ROUNDS; round++) {
      // kubectl first on odd rounds, operator first on even ones
      const order = round % 2 === 1 ? ['kubectl', 'operator'] : ['operator', 'kubectl'];
      for (const who of order) {
        const pod = `${who}-${round}`;
        await makePod(state, ns, pod);
        if (who === 'kubectl') {
          const out = join(dir, `${pod}.log`);
          const ofd = openSync(out, 'w');
          const t0 = performance.now();
          const child = spawn(join(state.bin, 'kubectl'), ['logs', '-f', '--timestamps', pod, '-n', ns], { stdio: ['ignore', ofd, 'inherit'], env: { ...process.env, KUBECONFIG: state.kubeconfigPath } });
          await new Promise((r) => child.on('exit', r));
          const secs = (performance.now() - t0) / 1000;
          closeSync(ofd);
          const mib = statSync(out).size / 1048576;
          kubectlRates.push(mib / secs);
          console.log(`round ${round} kubectl  ${mib.toFixed(1)} MiB in ${secs.toFixed(2)} s = ${(mib / secs).toFixed(1)} MiB/s`);
        } else {
          const lt = { apiVersion: 'logtail.dev/v1alpha1', kind: 'LogTail', metadata: { name: pod, namespace: ns }, spec: { podName: pod } };
          const t0 = performance.now();
          await kubectl(state, ['apply', '-f', '-'], { input: JSON.stringify(lt) });
          let bytes = 0;
          // Poll with one cheap HTTPS GET, not a kubectl process per look:
          // spawning kubectl every 100 ms would steal the CPU being measured.
          for (;;) {
            peakRss = Math.max(peakRss, rssKiB(op.pid!));
            const lt = await api.request<{ status?: { phase?: string; bytes?: number } }>('GET', api.logTailPath(ns, pod)).catch(() => undefined);
            const phase = lt?.status?.phase;
            if (phase === 'Complete') {
              bytes = lt!.status!.bytes ?? 0;
              break;
            }
            if (phase === 'Failed' || phase === 'Incomplete') throw new Error(`operator capture ${pod} ended ${phase}`);
            await sleep(50);
          }
          const secs = (performance.now() - t0) / 1000;
          const mib = bytes / 1048576;
          operatorRates.push(mib / secs);
          console.log(`round ${round} operator ${mib.toFixed(1)} MiB in ${secs.toFixed(2)} s = ${(mib / secs).toFixed(1)} MiB/s (content without timestamps; the stream carried ${((bytes + 31 * LINES) / 1048576).toFixed(1)} MiB)`);
        }
        await kubectl(state, ['delete', 'pod', pod, '-n', ns, '--wait=false']);
      }
    }
    // Compare like with like: kubectl's file holds the timestamps too, so use
    // the bytes carried over the wire for both.
    const wireFactor = (LINE + 31) / LINE;
    const opWire = operatorRates.map((r) => r * wireFactor);
    console.log('');
    console.log(`kubectl logs -f --timestamps: median ${median(kubectlRates).toFixed(1)} MiB/s  [${kubectlRates.map((r) => r.toFixed(1)).join(', ')}]`);
    console.log(`operator (wire bytes):        median ${median(opWire).toFixed(1)} MiB/s  [${opWire.map((r) => r.toFixed(1)).join(', ')}]`);
    console.log(`ratio operator/kubectl: ${(median(opWire) / median(kubectlRates)).toFixed(2)}x`);
    api.close();
    console.log(`operator RSS: ${Math.round(baseRss / 1024)} MiB idle, ${Math.round(peakRss / 1024)} MiB peak while capturing ${MIB} MiB`);
  } finally {
    op?.kill('SIGTERM');
    await sleep(500);
    await down(dir);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
