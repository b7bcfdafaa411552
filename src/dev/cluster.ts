// The local control plane: real etcd + kube-apiserver + the node simulator +
// a real S3 server, all on 127.0.0.1, all children of this launcher but
// detached so `cluster up` can return while they keep running. The same code
// is the mocha fixture and the `npm run cluster` CLI.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { networkInterfaces } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { makePki, nodeServingCert } from './pki.ts';
import { freePort, freePorts, isAlive, run, sleep } from './proc.ts';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface ClusterOptions {
  dir: string;
  /** Simulated node names; default sim-1, sim-2. */
  nodes?: string[];
  /** Skip the node simulator (for tests of the launcher itself). */
  simulator?: boolean;
  /** Start the hollow kubelet node kubelet-1 behind its fault proxy (default true). */
  kubelet?: boolean;
  log?: (msg: string) => void;
  readyTimeoutMs?: number;
}

interface ProcInfo {
  name: string;
  pid: number;
  cmd: string;
  args: string[];
  log: string;
}

export interface ClusterState {
  dir: string;
  bin: string;
  apiserverUrl: string;
  apiserverPort: number;
  token: string;
  caFile: string;
  kubeconfigPath: string;
  etcdDataDir: string;
  simDir: string;
  /** The address the hollow kubelets register as their InternalIP (never loopback). */
  nodeIp?: string;
  kubelets?: KubeletInfo[];
  s3: { endpoint: string; bucket: string; accessKey: string; secretKey: string; region: string; dataDir: string };
  procs: ProcInfo[];
  env: Record<string, string>;
}

/** A hollow kubelet of this cluster (node name, where the apiserver reaches it). */
export interface KubeletInfo {
  name: string;
  nodeIp: string;
  /** The kubelet API port the Node advertises (the proxy's when proxied). */
  port: number;
  /** A fault proxy listens on nodeIp:port and the kubelet on 127.0.0.1:port. */
  proxied: boolean;
  /** Serving certificate from a CSR (add-node) instead of one issued at start. */
  tlsBootstrap: boolean;
  rootDir: string;
}

/** The node `cluster up` starts: a hollow kubelet (the real kubelet code) behind the fault proxy. */
export const KUBELET_NODE = 'kubelet-1';
/** Label on every hollow kubelet's Node. */
export const HOLLOW_KUBELET_LABEL = 'logtail.dev/hollow-kubelet';

const S3_BUCKET = 'logtail';
const S3_REGION = 'us-east-1';

/** Builds or finds the cached toolchain; returns the bin/ folder of links. */
export async function ensureToolchain(log: (m: string) => void = (m) => process.stderr.write(m + '\n')): Promise<string> {
  // A bin/ folder built earlier, used as it is (no build): for working beside
  // someone who is changing the toolchain's sources in the same tree.
  const prebuilt = process.env.LOGTAIL_PREBUILT_TOOLCHAIN;
  if (prebuilt) {
    if (!existsSync(join(prebuilt, 'kube-apiserver'))) throw new Error(`LOGTAIL_PREBUILT_TOOLCHAIN=${prebuilt} has no kube-apiserver`);
    return resolve(prebuilt);
  }
  const script = join(REPO_ROOT, 'scripts', 'toolchain.sh');
  return new Promise((resolvePromise, reject) => {
    // The build prints its progress on stderr; pass it through live so a cold
    // 15-minute build never looks hung.
    const child = spawn('bash', [script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => log(b.toString().trimEnd()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`toolchain build failed (exit ${code}); see the output above`));
      const bin = out.trim().split('\n').pop() ?? '';
      if (!existsSync(join(bin, 'kube-apiserver'))) return reject(new Error(`toolchain did not produce ${bin}/kube-apiserver`));
      resolvePromise(bin);
    });
  });
}

function spawnDetached(state: ClusterState, name: string, cmd: string, args: string[], env?: NodeJS.ProcessEnv): ProcInfo {
  const log = join(state.dir, 'logs', `${name}.log`);
  const fd = openSync(log, 'a');
  // detached: its own process group, so `down` can kill the whole group and
  // the launcher's exit (cluster up) doesn't take it along.
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', fd, fd], env: env ?? process.env });
  closeSync(fd);
  child.unref();
  if (child.pid === undefined) throw new Error(`could not start ${name} (${cmd})`);
  const info = { name, pid: child.pid, cmd, args, log };
  state.procs = state.procs.filter((p) => p.name !== name).concat(info);
  saveState(state);
  return info;
}

function saveState(state: ClusterState): void {
  writeFileSync(join(state.dir, 'state.json'), JSON.stringify(state, null, 2));
}

export function loadState(dir: string): ClusterState {
  const file = join(resolve(dir), 'state.json');
  if (!existsSync(file)) throw new Error(`no cluster state in ${dir} (state.json missing): was it started with "cluster up --dir ${dir}"?`);
  return JSON.parse(readFileSync(file, 'utf8')) as ClusterState;
}

function tailOf(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

async function waitFor(what: string, logFile: string, pid: number, deadlineMs: number, probe: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    if (!isAlive(pid)) throw new Error(`${what} exited during start-up; its log ${logFile} ends with:\n${tailOf(logFile)}`);
    if (await probe().catch(() => false)) return;
    await sleep(200);
  }
  throw new Error(`${what} not ready after ${Math.round(deadlineMs / 1000)} s; see ${logFile}:\n${tailOf(logFile)}`);
}

function httpsGet(url: string, token: string, ca: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolvePromise, reject) => {
    const req = request(url, { headers: { Authorization: `Bearer ${token}` }, ca, timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (b: Buffer) => (body += b.toString()));
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

function apiserverArgs(state: ClusterState, etcdUrl: string): string[] {
  const pki = join(state.dir, 'pki');
  return [
    `--etcd-servers=${etcdUrl}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--secure-port=${state.apiserverPort}`,
    `--cert-dir=${join(state.dir, 'apiserver-certs')}`,
    `--tls-cert-file=${join(pki, 'apiserver.crt')}`,
    `--tls-private-key-file=${join(pki, 'apiserver.key')}`,
    `--client-ca-file=${join(pki, 'ca.crt')}`,
    `--token-auth-file=${join(pki, 'tokens.csv')}`,
    '--authorization-mode=RBAC',
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${join(pki, 'sa.pub')}`,
    `--service-account-signing-key-file=${join(pki, 'sa.key')}`,
    '--service-cluster-ip-range=10.0.0.0/24',
    '--endpoint-reconciler-type=none',
    '--disable-admission-plugins=ServiceAccount',
    '--kubelet-preferred-address-types=InternalIP',
    '--profiling=false',
    '--v=1',
  ];
}

async function startApiserver(state: ClusterState, readyTimeoutMs: number): Promise<void> {
  const etcd = state.procs.find((p) => p.name === 'etcd');
  if (!etcd) throw new Error('etcd is not part of this cluster');
  const etcdUrl = etcd.args.find((a) => a.startsWith('--advertise-client-urls='))!.split('=')[1]!;
  const p = spawnDetached(state, 'kube-apiserver', join(state.bin, 'kube-apiserver'), apiserverArgs(state, etcdUrl));
  const ca = readFileSync(state.caFile);
  await waitFor('kube-apiserver', p.log, p.pid, readyTimeoutMs, async () => (await httpsGet(`${state.apiserverUrl}/readyz`, state.token, ca)).status === 200);
}

/** The machine's first non-loopback IPv4 address (LOGTAIL_NODE_IP overrides): the kubelet refuses a loopback node IP. */
export function findNodeIp(): string {
  if (process.env.LOGTAIL_NODE_IP) return process.env.LOGTAIL_NODE_IP;
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  throw new Error('this machine has no non-loopback IPv4 address, and the kubelet refuses a loopback node IP; set LOGTAIL_NODE_IP');
}

function canBind(host: string, port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const srv = createServer();
    srv.once('error', () => resolvePromise(false));
    srv.listen(port, host, () => srv.close(() => resolvePromise(true)));
  });
}

/** A port free on every one of `hosts` (a proxied kubelet needs it on 127.0.0.1 and on the node IP). */
async function freePortOn(hosts: string[]): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await freePort();
    if ((await Promise.all(hosts.map((h) => canBind(h, port)))).every(Boolean)) return port;
  }
  throw new Error(`no port free on ${hosts.join(' and ')}`);
}

async function nodeReady(state: ClusterState, name: string): Promise<boolean> {
  const r = await httpsGet(`${state.apiserverUrl}/api/v1/nodes/${name}`, state.token, readFileSync(state.caFile));
  if (r.status !== 200) return false;
  const node = JSON.parse(r.body) as { status?: { conditions?: { type: string; status: string }[] } };
  return (node.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

interface KubeletStart {
  name: string;
  proxied: boolean;
  tlsBootstrap: boolean;
  containerLogMaxSize?: string;
  readyTimeoutMs: number;
}

/**
 * Starts one hollow kubelet (and its fault proxy when proxied) and returns
 * once its Node is Ready. A proxied kubelet serves on 127.0.0.1:PORT with a
 * certificate from the cluster CA; the proxy takes NODE_IP:PORT, the address
 * the Node advertises. An unproxied one listens on NODE_IP:PORT itself.
 */
async function startKubelet(state: ClusterState, o: KubeletStart): Promise<KubeletInfo> {
  // LOGTAIL_HOLLOW_KUBELET: a development build instead of the toolchain's.
  const bin = process.env.LOGTAIL_HOLLOW_KUBELET || join(state.bin, 'hollow-kubelet');
  if (!existsSync(bin)) throw new Error(`${bin} is missing: scripts/toolchain.sh builds it ("npm run toolchain")`);
  state.nodeIp ??= findNodeIp();
  const ip = state.nodeIp;
  const pki = join(state.dir, 'pki');
  const port = await freePortOn(o.proxied ? ['127.0.0.1', ip] : [ip]);
  const rootDir = join(state.dir, 'kubelets', o.name);
  rmSync(rootDir, { recursive: true, force: true });
  mkdirSync(rootDir, { recursive: true });
  const args = ['--kubeconfig', state.kubeconfigPath, '--node-name', o.name, '--node-ip', ip, '--port', String(port), '--root-dir', rootDir, '--sim-dir', state.simDir, '--node-labels', `${HOLLOW_KUBELET_LABEL}=true`];
  if (o.proxied) args.push('--listen-address', '127.0.0.1');
  if (o.tlsBootstrap) args.push('--server-tls-bootstrap');
  else {
    await nodeServingCert(pki, o.name, ip);
    args.push('--tls-cert', join(pki, `${o.name}.crt`), '--tls-key', join(pki, `${o.name}.key`));
  }
  if (o.containerLogMaxSize) args.push('--container-log-max-size', o.containerLogMaxSize);
  const info: KubeletInfo = { name: o.name, nodeIp: ip, port, proxied: o.proxied, tlsBootstrap: o.tlsBootstrap, rootDir };
  state.kubelets = (state.kubelets ?? []).filter((k) => k.name !== o.name).concat(info);
  const waits: Promise<void>[] = [];
  if (o.proxied) {
    const readyFile = join(rootDir, 'proxy-ready.json');
    const proxy = spawnDetached(state, `kubelet-proxy-${o.name}`, process.execPath, [
      join(REPO_ROOT, 'src', 'dev', 'kubelet-proxy', 'main.ts'),
      '--kubeconfig', state.kubeconfigPath,
      '--node-name', o.name,
      '--listen', `${ip}:${port}`,
      '--upstream', `127.0.0.1:${port}`,
      '--tls-cert', join(pki, `${o.name}.crt`),
      '--tls-key', join(pki, `${o.name}.key`),
      '--upstream-ca', state.caFile,
      '--ready-file', readyFile,
    ]);
    waits.push(waitFor(`kubelet proxy ${o.name}`, proxy.log, proxy.pid, o.readyTimeoutMs, async () => existsSync(readyFile)));
  }
  const k = spawnDetached(state, `hollow-kubelet-${o.name}`, bin, args);
  waits.push(waitFor(`hollow kubelet ${o.name}`, k.log, k.pid, o.readyTimeoutMs, () => nodeReady(state, o.name)));
  const results = await Promise.allSettled(waits);
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  return info;
}

export interface AddNodeOptions {
  name: string;
  /** Seconds after add-node returns until the node's serving-certificate CSR is approved and signed. */
  csrDelaySeconds: number;
  /** The kubelet's own containerLogMaxSize for the whole node (e.g. 10Mi). */
  containerLogMaxSize?: string;
  readyTimeoutMs?: number;
}

/**
 * Adds a hollow kubelet that bootstraps its serving certificate (no proxy in
 * front: until its CSR is signed the kubelet itself answers every TLS
 * handshake with an internal_error alert). Returns once the Node is Ready;
 * a background csr-approver signs the CSR `csrDelaySeconds` later.
 */
export async function addNode(dir: string, o: AddNodeOptions): Promise<KubeletInfo & { approverPid: number }> {
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(o.name)) throw new Error(`node name "${o.name}" is not a DNS-1123 label`);
  if (!Number.isFinite(o.csrDelaySeconds) || o.csrDelaySeconds < 0) throw new Error(`--csr-delay must be a number of seconds >= 0, got ${o.csrDelaySeconds}`);
  const state = loadState(dir);
  if (!isAlive(state.procs.find((p) => p.name === 'kube-apiserver')?.pid ?? -1)) throw new Error(`the cluster in ${dir} is not running`);
  if (state.procs.some((p) => p.name === `hollow-kubelet-${o.name}` && isAlive(p.pid)) || o.name === KUBELET_NODE) throw new Error(`node ${o.name} is already running in ${dir}`);
  try {
    const info = await startKubelet(state, { name: o.name, proxied: false, tlsBootstrap: true, containerLogMaxSize: o.containerLogMaxSize, readyTimeoutMs: o.readyTimeoutMs ?? 90_000 });
    const approver = spawnDetached(state, `csr-approver-${o.name}`, process.execPath, [
      join(REPO_ROOT, 'src', 'dev', 'csr-approver.ts'),
      '--kubeconfig', state.kubeconfigPath,
      '--node-name', o.name,
      '--delay-seconds', String(o.csrDelaySeconds),
      '--pki', join(state.dir, 'pki'),
    ]);
    return { ...info, approverPid: approver.pid };
  } catch (err) {
    await removeNode(dir, o.name).catch(() => undefined);
    throw err;
  }
}

/** Stops a node added with addNode (its kubelet and approver) and deletes its Node object. */
export async function removeNode(dir: string, name: string): Promise<void> {
  const state = loadState(dir);
  const mine = state.procs.filter((p) => p.name === `hollow-kubelet-${name}` || p.name === `csr-approver-${name}` || p.name === `kubelet-proxy-${name}`);
  await Promise.all(mine.map((p) => stopProc(p)));
  state.procs = state.procs.filter((p) => !mine.includes(p));
  state.kubelets = (state.kubelets ?? []).filter((k) => k.name !== name);
  saveState(state);
  await kubectl(state, ['delete', 'node', name, '--ignore-not-found', '--wait=false']);
}

function kubeconfigYaml(state: ClusterState): string {
  const ca = readFileSync(state.caFile).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: logtail-local',
    '  cluster:',
    `    server: ${state.apiserverUrl}`,
    `    certificate-authority-data: ${ca}`,
    'users:',
    '- name: admin',
    '  user:',
    `    token: ${state.token}`,
    'contexts:',
    '- name: logtail-local',
    '  context:',
    '    cluster: logtail-local',
    '    user: admin',
    '    namespace: default',
    'current-context: logtail-local',
    '',
  ].join('\n');
}

function envFile(env: Record<string, string>): string {
  const q = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;
  return Object.entries(env)
    .map(([k, v]) => `export ${k}=${q(v)}`)
    .join('\n') + '\n';
}

/** Starts everything and returns once the apiserver, S3 and the simulator answer. */
export async function up(opts: ClusterOptions): Promise<ClusterState> {
  const log = opts.log ?? ((m: string) => process.stderr.write(m + '\n'));
  const dir = resolve(opts.dir);
  const readyTimeoutMs = opts.readyTimeoutMs ?? 90_000;
  if (existsSync(join(dir, 'state.json'))) {
    const old = loadState(dir);
    if (old.procs.some((p) => isAlive(p.pid))) throw new Error(`a cluster is already running in ${dir}; run "cluster down --dir ${dir}" first`);
  }
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const t0 = Date.now();
  const step = (m: string) => log(`[cluster +${((Date.now() - t0) / 1000).toFixed(1)}s] ${m}`);
  const bin = await ensureToolchain(log);

  step('generating PKI');
  const pki = join(dir, 'pki');
  rmSync(pki, { recursive: true, force: true });
  await makePki(pki);
  const token = randomBytes(24).toString('hex');
  writeFileSync(join(pki, 'tokens.csv'), `${token},logtail-admin,logtail-admin-uid,"system:masters"\n`);

  const [etcdPort, etcdPeer, apiPort, s3Port] = (await freePorts(4)) as [number, number, number, number];
  // etcd on tmpfs: the control plane is disposable and fsync on a shared disk
  // is what makes a test apiserver slow.
  const etcdDataDir = existsSync('/dev/shm') ? join('/dev/shm', `logtail-etcd-${randomBytes(6).toString('hex')}`) : join(dir, 'etcd');
  const simDir = join(dir, 'sim');
  mkdirSync(simDir, { recursive: true });
  // A reused directory starts from an empty store, like the rest of the cluster.
  rmSync(join(dir, 'kubelets'), { recursive: true, force: true });
  const s3Data = join(dir, 's3');
  rmSync(s3Data, { recursive: true, force: true });
  mkdirSync(s3Data, { recursive: true });
  const state: ClusterState = {
    dir,
    bin,
    apiserverUrl: `https://127.0.0.1:${apiPort}`,
    apiserverPort: apiPort,
    token,
    caFile: join(pki, 'ca.crt'),
    kubeconfigPath: join(dir, 'kubeconfig'),
    etcdDataDir,
    simDir,
    kubelets: [],
    s3: {
      endpoint: `http://127.0.0.1:${s3Port}`,
      bucket: S3_BUCKET,
      accessKey: 'logtail-' + randomBytes(4).toString('hex'),
      secretKey: randomBytes(18).toString('hex'),
      region: S3_REGION,
      dataDir: s3Data,
    },
    procs: [],
    env: {},
  };
  try {
    step('starting etcd');
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const etcd = spawnDetached(state, 'etcd', join(bin, 'etcd'), [
      '--name=logtail',
      `--data-dir=${etcdDataDir}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=logtail=http://127.0.0.1:${etcdPeer}`,
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    await waitFor('etcd', etcd.log, etcd.pid, readyTimeoutMs, async () => {
      const r = await fetch(`${etcdUrl}/health`);
      return r.ok;
    });

    step('starting S3 server (versitygw)');
    const s3 = spawnDetached(state, 'versitygw', join(bin, 'versitygw'), ['--access', state.s3.accessKey, '--secret', state.s3.secretKey, '--port', `127.0.0.1:${s3Port}`, 'posix', s3Data]);
    const s3Client = new S3Client({
      endpoint: state.s3.endpoint,
      region: S3_REGION,
      forcePathStyle: true,
      credentials: { accessKeyId: state.s3.accessKey, secretAccessKey: state.s3.secretKey },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    await waitFor('versitygw', s3.log, s3.pid, readyTimeoutMs, async () => {
      try {
        await s3Client.send(new CreateBucketCommand({ Bucket: S3_BUCKET }));
      } catch (err) {
        // a retried create whose first attempt did land
        const name = (err as { name?: string }).name ?? '';
        if (name !== 'BucketAlreadyOwnedByYou' && name !== 'BucketAlreadyExists') throw err;
      }
      return true;
    });
    s3Client.destroy();

    step('starting kube-apiserver');
    await startApiserver(state, readyTimeoutMs);

    writeFileSync(state.kubeconfigPath, kubeconfigYaml(state), { mode: 0o600 });
    state.env = {
      KUBECONFIG: state.kubeconfigPath,
      LOGTAIL_TOOLCHAIN_BIN: bin,
      LOGTAIL_SIM_DIR: simDir,
      LOGTAIL_S3_ENDPOINT: state.s3.endpoint,
      LOGTAIL_S3_BUCKET: state.s3.bucket,
      AWS_ACCESS_KEY_ID: state.s3.accessKey,
      AWS_SECRET_ACCESS_KEY: state.s3.secretKey,
      AWS_REGION: state.s3.region,
      LOGTAIL_APISERVER_URL: state.apiserverUrl,
      LOGTAIL_CLUSTER_DIR: dir,
    };
    writeFileSync(join(dir, 'env'), envFile(state.env));
    saveState(state);

    // The simulator and the hollow kubelet start side by side: each takes seconds.
    const starts: Promise<unknown>[] = [];
    if (opts.simulator !== false && process.env.LOGTAIL_NO_SIM !== '1') {
      starts.push(
        (async () => {
          step('starting node simulator');
          const simState = join(dir, 'simulator');
          rmSync(simState, { recursive: true, force: true });
          mkdirSync(simState, { recursive: true });
          const sim = spawnDetached(state, 'simulator', process.execPath, [
            join(REPO_ROOT, 'src', 'dev', 'simulator', 'main.ts'),
            '--kubeconfig', state.kubeconfigPath,
            '--sim-dir', simDir,
            '--state-dir', simState,
            '--tls-cert', join(pki, 'kubelet.crt'),
            '--tls-key', join(pki, 'kubelet.key'),
            '--nodes', (opts.nodes ?? ['sim-1', 'sim-2']).join(','),
          ]);
          await waitFor('node simulator', sim.log, sim.pid, readyTimeoutMs, async () => existsSync(join(simState, 'ready.json')));
        })(),
      );
    }
    if (opts.kubelet !== false && process.env.LOGTAIL_NO_KUBELET !== '1') {
      starts.push(
        (async () => {
          state.nodeIp ??= findNodeIp();
          step(`starting hollow kubelet ${KUBELET_NODE} on ${state.nodeIp} behind its fault proxy`);
          await startKubelet(state, { name: KUBELET_NODE, proxied: true, tlsBootstrap: false, readyTimeoutMs });
          step(`node ${KUBELET_NODE} Ready`);
          state.env.LOGTAIL_KUBELET_NODE = KUBELET_NODE;
        })(),
      );
    }
    // Wait for both even when one fails, so the clean-up below sees every process.
    const results = await Promise.allSettled(starts);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    writeFileSync(join(dir, 'env'), envFile(state.env));
    saveState(state);
    step(`ready: KUBECONFIG=${state.kubeconfigPath}`);
    return state;
  } catch (err) {
    await down(dir).catch(() => undefined);
    throw err;
  }
}

function killGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      /* already gone */
    }
  }
}

async function stopProc(p: ProcInfo, graceMs = 5000): Promise<void> {
  if (!isAlive(p.pid)) return;
  killGroup(p.pid, 'SIGTERM');
  const end = Date.now() + graceMs;
  while (Date.now() < end && isAlive(p.pid)) await sleep(50);
  if (isAlive(p.pid)) killGroup(p.pid, 'SIGKILL');
  const end2 = Date.now() + 2000;
  while (Date.now() < end2 && isAlive(p.pid)) await sleep(20);
}

// The node side (simulator, kubelets, their proxies and CSR approvers) stops
// first and in parallel; then the control plane, in reverse start order.
const NODE_SIDE = /^(simulator|hollow-kubelet-|kubelet-proxy-|csr-approver-)/;

/** Stops every process of the cluster in `dir` and removes etcd's tmpfs data. */
export async function down(dir: string): Promise<void> {
  const state = loadState(dir);
  const procs = [...state.procs].reverse();
  await Promise.all(procs.filter((p) => NODE_SIDE.test(p.name)).map((p) => stopProc(p)));
  for (const p of procs.filter((x) => !NODE_SIDE.test(x.name))) await stopProc(p);
  if (state.etcdDataDir.startsWith('/dev/shm/')) rmSync(state.etcdDataDir, { recursive: true, force: true });
}

/** Synchronous best effort, for process exit handlers (reads state.json again: add-node may have started more). */
export function killAllSync(state: ClusterState): void {
  let procs = state.procs;
  try {
    procs = loadState(state.dir).procs;
  } catch {
    /* keep the list we have */
  }
  for (const p of procs) killGroup(p.pid, 'SIGKILL');
  if (state.etcdDataDir.startsWith('/dev/shm/')) rmSync(state.etcdDataDir, { recursive: true, force: true });
}

/** Kills and restarts only kube-apiserver (etcd kept): used to prove informer supervision. */
export async function restartApiserver(dir: string, readyTimeoutMs = 120_000): Promise<void> {
  const state = loadState(dir);
  const p = state.procs.find((x) => x.name === 'kube-apiserver');
  if (p) await stopProc(p, 1000);
  await startApiserver(state, readyTimeoutMs);
}

/** Stops the cluster's S3 server (versitygw); its data stays. For outages in tests: startS3 brings it back. */
export async function stopS3(dir: string): Promise<void> {
  const state = loadState(dir);
  const p = state.procs.find((x) => x.name === 'versitygw');
  if (!p) throw new Error(`the cluster in ${dir} runs no S3 server`);
  await stopProc(p, 1000);
}

/** Starts the S3 server again after stopS3, on the same port, data and keys; returns once it answers. */
export async function startS3(dir: string, readyTimeoutMs = 30_000): Promise<void> {
  const state = loadState(dir);
  const p = state.procs.find((x) => x.name === 'versitygw');
  if (!p) throw new Error(`the cluster in ${dir} runs no S3 server`);
  if (isAlive(p.pid)) return;
  const s3 = spawnDetached(state, 'versitygw', p.cmd, p.args);
  const client = new S3Client({ endpoint: state.s3.endpoint, region: state.s3.region, forcePathStyle: true, credentials: { accessKeyId: state.s3.accessKey, secretAccessKey: state.s3.secretKey } });
  try {
    await waitFor('versitygw', s3.log, s3.pid, readyTimeoutMs, async () => {
      await client.send(new HeadBucketCommand({ Bucket: state.s3.bucket }));
      return true;
    });
  } finally {
    client.destroy();
  }
}

/** Runs the cluster's own kubectl with the cluster's kubeconfig. */
export function kubectl(state: Pick<ClusterState, 'bin' | 'kubeconfigPath'>, args: string[], opts: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}) {
  return run(join(state.bin, 'kubectl'), args, {
    env: { ...process.env, ...opts.env, KUBECONFIG: state.kubeconfigPath },
    input: opts.input,
    timeoutMs: opts.timeoutMs ?? 60_000,
  });
}
