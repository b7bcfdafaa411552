// The local control plane: real etcd + kube-apiserver + the node simulator +
// a real S3 server, all on 127.0.0.1, all children of this launcher but
// detached so `cluster up` can return while they keep running. The same code
// is the mocha fixture and the `npm run cluster` CLI.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { freePort, isAlive, run, runOk, sleep } from './proc.ts';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface ClusterOptions {
  dir: string;
  /** Simulated node names; default sim-1, sim-2. */
  nodes?: string[];
  /** Skip the node simulator (for tests of the launcher itself). */
  simulator?: boolean;
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
  s3: { endpoint: string; bucket: string; accessKey: string; secretKey: string; region: string; dataDir: string };
  procs: ProcInfo[];
  env: Record<string, string>;
}

const S3_BUCKET = 'logtail';
const S3_REGION = 'us-east-1';

/** Builds or finds the cached toolchain; returns the bin/ folder of links. */
export async function ensureToolchain(log: (m: string) => void = (m) => process.stderr.write(m + '\n')): Promise<string> {
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

async function makePki(pki: string): Promise<void> {
  mkdirSync(pki, { recursive: true });
  const o = (args: string[]) => runOk('openssl', args, { cwd: pki });
  await o(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '3650', '-subj', '/CN=logtail-local-ca']);
  const leaf = async (name: string, cn: string, sans: string) => {
    writeFileSync(join(pki, `${name}.ext`), `subjectAltName=${sans}\nextendedKeyUsage=serverAuth,clientAuth\n`);
    await o(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`]);
    await o(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '3650', '-extfile', `${name}.ext`]);
  };
  await leaf('apiserver', 'kube-apiserver', 'IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc');
  await leaf('kubelet', 'sim-kubelet', 'IP:127.0.0.1,DNS:localhost');
  await o(['genrsa', '-out', 'sa.key', '2048']);
  await o(['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub']);
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

  const [etcdPort, etcdPeer, apiPort, s3Port] = [await freePort(), await freePort(), await freePort(), await freePort()];
  // etcd on tmpfs: the control plane is disposable and fsync on a shared disk
  // is what makes a test apiserver slow.
  const etcdDataDir = existsSync('/dev/shm') ? join('/dev/shm', `logtail-etcd-${randomBytes(6).toString('hex')}`) : join(dir, 'etcd');
  const simDir = join(dir, 'sim');
  mkdirSync(simDir, { recursive: true });
  // A reused directory starts from an empty store, like the rest of the cluster.
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

    if (opts.simulator !== false && process.env.LOGTAIL_NO_SIM !== '1') {
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
    }
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

/** Stops every process of the cluster in `dir` (reverse start order) and removes etcd's tmpfs data. */
export async function down(dir: string): Promise<void> {
  const state = loadState(dir);
  for (const p of [...state.procs].reverse()) await stopProc(p);
  if (state.etcdDataDir.startsWith('/dev/shm/')) rmSync(state.etcdDataDir, { recursive: true, force: true });
}

/** Synchronous best effort, for process exit handlers. */
export function killAllSync(state: ClusterState): void {
  for (const p of state.procs) killGroup(p.pid, 'SIGKILL');
  if (state.etcdDataDir.startsWith('/dev/shm/')) rmSync(state.etcdDataDir, { recursive: true, force: true });
}

/** Kills and restarts only kube-apiserver (etcd kept): used to prove informer supervision. */
export async function restartApiserver(dir: string, readyTimeoutMs = 120_000): Promise<void> {
  const state = loadState(dir);
  const p = state.procs.find((x) => x.name === 'kube-apiserver');
  if (p) await stopProc(p, 1000);
  await startApiserver(state, readyTimeoutMs);
}

/** Runs the cluster's own kubectl with the cluster's kubeconfig. */
export function kubectl(state: Pick<ClusterState, 'bin' | 'kubeconfigPath'>, args: string[], opts: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}) {
  return run(join(state.bin, 'kubectl'), args, {
    env: { ...process.env, ...opts.env, KUBECONFIG: state.kubeconfigPath },
    input: opts.input,
    timeoutMs: opts.timeoutMs ?? 60_000,
  });
}
