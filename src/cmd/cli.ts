// `logtail` / `kubectl logtail`: read a LogTail's result back, verified.
import { KubeConfig } from '@kubernetes/client-node';
import { KubeApi, isNotFound } from '../adapters/kube-api.ts';
import { normalizeStoreUrl, storeFromUrl } from '../adapters/store/index.ts';
import type { LogTail } from '../core/spec.ts';
import type { ContainerCapture } from '../core/status.ts';
import { checkObjectUri, readVerified, VerifyError, type Compression } from './verified-read.ts';
import { chooseContainer, follow, TERMINAL_PHASES } from './follow.ts';

const USAGE = `usage:
  logtail get NAME [-n NAMESPACE] [-c CONTAINER] [--restart N] [--allow-incomplete]
              [-o FILE] [--store URL]
      write the captured log to stdout, or to FILE with -o (decompressed as the
      LogTail's spec.compression says). The object is spooled to a private
      temporary file and its size and sha256 checked first: on a mismatch
      nothing of it is written and the exit status is 1. With --store (or
      LOGTAIL_STORE) the object must lie under STORE/NAMESPACE/; without it,
      under a NAMESPACE/ folder of its bucket or directory.
  logtail logs [-f] NAME [-n NAMESPACE] [-c CONTAINER] [--store URL]
      a finished LogTail: the verified stored object, as "get" prints it.
      With -f, while the capture runs: the container's log read live from
      pods/log with your own credentials, every run from its start; once the
      LogTail has finished, checks that what was printed equals the stored
      object (sha256) and says so on stderr (exit status 1 if not, or if the
      LogTail did not end Complete).
  logtail describe NAME [-n NAMESPACE]
      status, per-container results, conditions and recent events

Reads the current kubeconfig (KUBECONFIG). Objects in s3:// stores are read
with the AWS SDK's default credentials; set LOGTAIL_S3_ENDPOINT (and
AWS_REGION) for S3-compatible servers, LOGTAIL_S3_CA_BUNDLE (a PEM file) for
one with a private CA.
`;

class CliError extends Error {}

interface Args {
  cmd: string;
  name: string;
  namespace?: string;
  container?: string;
  restart?: number;
  allowIncomplete: boolean;
  output?: string;
  store?: string;
  follow: boolean;
}

function parseArgs(argv: string[]): Args {
  const pos: string[] = [];
  const a: Partial<Args> = { allowIncomplete: false, follow: false };
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i]!;
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new CliError(`${x} needs a value`);
      return v;
    };
    if (x === '-h' || x === '--help') throw new CliError(USAGE);
    else if (x === '-n' || x === '--namespace') a.namespace = val();
    else if (x.startsWith('--namespace=')) a.namespace = x.slice(12);
    else if (x === '-c' || x === '--container') a.container = val();
    else if (x.startsWith('--container=')) a.container = x.slice(12);
    else if (x === '--restart') a.restart = Number(val());
    else if (x === '--allow-incomplete') a.allowIncomplete = true;
    else if (x === '-f' || x === '--follow') a.follow = true;
    else if (x === '-o' || x === '--output') a.output = val();
    else if (x.startsWith('--output=')) a.output = x.slice(9);
    else if (x === '--store') a.store = val();
    else if (x.startsWith('--store=')) a.store = x.slice(8);
    else if (x.startsWith('-')) throw new CliError(`unknown flag ${x}\n\n${USAGE}`);
    else pos.push(x);
  }
  if (pos.length !== 2 || !['get', 'describe', 'logs'].includes(pos[0]!)) throw new CliError(USAGE);
  if (a.follow && pos[0] !== 'logs') throw new CliError(`-f is for "logs"\n\n${USAGE}`);
  return { ...(a as Args), cmd: pos[0]!, name: pos[1]! };
}

async function fetchLogTail(api: KubeApi, ns: string, name: string): Promise<LogTail> {
  try {
    return await api.request<LogTail>('GET', api.logTailPath(ns, name));
  } catch (err) {
    if (isNotFound(err)) throw new CliError(`LogTail "${name}" not found in namespace "${ns}"`);
    throw err;
  }
}

function pickCapture(lt: LogTail, a: Args): ContainerCapture {
  const caps = (lt.status?.containers ?? []) as ContainerCapture[];
  const names = [...new Set(caps.map((c) => c.name))];
  let name = a.container;
  if (!name) {
    if (names.length === 1) name = names[0];
    else throw new CliError(`LogTail "${lt.metadata.name}" captured ${names.length} containers (${names.join(', ')}); choose one with -c`);
  }
  const mine = caps.filter((c) => c.name === name);
  if (mine.length === 0) throw new CliError(`LogTail "${lt.metadata.name}" has no capture for container "${name}" (it has: ${names.join(', ') || 'none'})`);
  const chosen = a.restart !== undefined ? mine.find((c) => c.restart === a.restart) : mine.reduce((x, y) => (y.restart > x.restart ? y : x));
  if (!chosen) throw new CliError(`container "${name}" has no instance with restart ${a.restart} (has: ${mine.map((c) => c.restart).join(', ')})`);
  if (!chosen.object) throw new CliError(`container "${name}" (restart ${chosen.restart}) has no stored object: state ${chosen.state}${chosen.lastError ? `, ${chosen.lastError}` : ''}`);
  return chosen;
}

async function get(api: KubeApi, ns: string, a: Args): Promise<void> {
  const lt = await fetchLogTail(api, ns, a.name);
  const phase = lt.status?.phase ?? 'Pending';
  if (phase !== 'Complete' && !(phase === 'Incomplete' && a.allowIncomplete)) {
    const why = lt.status?.reason ? ` (reason ${lt.status.reason}${lt.status.message ? `: ${lt.status.message}` : ''})` : '';
    const hint = phase === 'Incomplete' ? '; pass --allow-incomplete to read what was stored' : '';
    throw new CliError(`LogTail "${a.name}" is not Complete: phase ${phase}${why}${hint}`);
  }
  const cap = pickCapture(lt, a);
  const uri = cap.object!.uri;
  const compression = (lt.spec?.compression ?? 'none') as string;
  if (compression !== 'none' && compression !== 'gzip') throw new CliError(`LogTail "${a.name}" has spec.compression "${compression}", which this CLI does not know`);
  const storeArg = a.store ?? process.env.LOGTAIL_STORE;
  const storeRoot = storeArg ? normalizeStoreUrl(storeArg) : undefined;
  const ltNamespace = lt.metadata.namespace ?? ns;
  try {
    checkObjectUri(uri, ltNamespace, storeRoot);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  const u = new URL(uri);
  const store = await storeFromUrl(storeRoot ?? (u.protocol === 's3:' ? `s3://${u.host}` : 'file:///'), {
    endpoint: process.env.LOGTAIL_S3_ENDPOINT,
    region: process.env.AWS_REGION ?? 'us-east-1',
    forcePathStyle: !!process.env.LOGTAIL_S3_ENDPOINT,
    ...(process.env.LOGTAIL_S3_CA_BUNDLE ? { caBundle: process.env.LOGTAIL_S3_CA_BUNDLE } : {}),
  });
  try {
    const r = await readVerified({ store, object: cap.object!, compression: compression as Compression, ...(a.output ? { outFile: a.output } : {}) });
    process.stderr.write(`verified sha256 ${r.sha256} (${uri})${a.output ? ` -> ${a.output}` : ''}\n`);
  } catch (err) {
    if (err instanceof VerifyError) throw new CliError(err.message);
    throw err;
  } finally {
    await store.close?.();
  }
}

/** `logs`: the verified stored object once finished; with -f, live until then, checked afterwards. */
async function logs(kc: KubeConfig, api: KubeApi, ns: string, a: Args): Promise<void> {
  const lt = await fetchLogTail(api, ns, a.name);
  if (TERMINAL_PHASES.includes(lt.status?.phase ?? '') || !a.follow) {
    await get(api, ns, a);
    return;
  }
  let container: string;
  try {
    container = chooseContainer(lt, await api.getPod(lt.metadata.namespace ?? ns, lt.spec.podName), a.container);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  const ok = await follow({ kc, api, out: process.stdout, err: process.stderr }, lt, container);
  if (!ok) process.exitCode = 1;
}

function age(t?: string): string {
  if (!t) return '-';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(t)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  return `${Math.round(s / 3600)}h`;
}

async function describe(api: KubeApi, ns: string, a: Args): Promise<void> {
  const lt = await fetchLogTail(api, ns, a.name);
  const s = lt.status;
  const out: string[] = [];
  out.push(`Name:        ${lt.metadata.name}`);
  out.push(`Namespace:   ${lt.metadata.namespace}`);
  out.push(`Pod:         ${lt.spec.podName}${s?.podUID ? ` (uid ${s.podUID})` : ''}`);
  out.push(`Phase:       ${s?.phase ?? 'Pending'}${s?.reason ? ` (${s.reason})` : ''}`);
  if (s?.message) out.push(`Message:     ${s.message}`);
  out.push(`Result:      ${s?.result ?? '-'}${s?.exitCode !== undefined ? `, exit code ${s.exitCode}` : ''}`);
  out.push(`Bytes:       ${s?.bytes ?? 0}`);
  out.push(`Retries:     ${s?.retries ?? 0}`);
  out.push(`Started:     ${s?.startTime ?? '-'}`);
  out.push(`Completed:   ${s?.completionTime ?? '-'}`);
  out.push('Containers:');
  for (const c of (s?.containers ?? []) as ContainerCapture[]) {
    out.push(`  ${c.name}${c.init ? ' (init)' : ''} restart ${c.restart}: ${c.state}${c.exitCode !== undefined ? `, exit ${c.exitCode}` : ''}${c.reason ? ` (${c.reason})` : ''}, ${c.bytes} bytes, ${c.lines} lines, ${c.streamRetries} retries`);
    if (c.object) out.push(`    object: ${c.object.uri} (${c.object.size} bytes, sha256 ${c.object.sha256})`);
    if (c.truncatedBytes) out.push(`    truncated: ${c.truncatedBytes} bytes left out between head and tail (spec.maxBytes=${String(lt.spec.maxBytes)})`);
    if (c.lastError) out.push(`    last error: ${c.lastError}`);
  }
  out.push('Conditions:');
  for (const c of s?.conditions ?? []) out.push(`  ${c.type.padEnd(10)} ${c.status.padEnd(7)} ${c.reason.padEnd(20)} ${c.message}`);
  try {
    const evs = await api.request<{ items: Array<{ type: string; reason: string; message: string; lastTimestamp?: string; eventTime?: string; metadata: { creationTimestamp?: string } }> }>(
      'GET',
      `/api/v1/namespaces/${ns}/events?fieldSelector=${encodeURIComponent(`involvedObject.kind=LogTail,involvedObject.name=${a.name}`)}`,
    );
    const items = evs.items.sort((x, y) => String(x.lastTimestamp ?? x.metadata.creationTimestamp).localeCompare(String(y.lastTimestamp ?? y.metadata.creationTimestamp))).slice(-15);
    out.push('Events:');
    if (items.length === 0) out.push('  <none>');
    for (const e of items) out.push(`  ${age(e.lastTimestamp ?? e.metadata.creationTimestamp).padEnd(5)} ${e.type.padEnd(8)} ${e.reason.padEnd(11)} ${e.message}`);
  } catch (err) {
    out.push(`Events: (not readable: ${(err as Error).message})`);
  }
  process.stdout.write(out.join('\n') + '\n');
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const kc = new KubeConfig();
  kc.loadFromDefault();
  const ns = a.namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
  const api = new KubeApi(kc);
  try {
    if (a.cmd === 'get') await get(api, ns, a);
    else if (a.cmd === 'logs') await logs(kc, api, ns, a);
    else await describe(api, ns, a);
  } finally {
    api.close();
  }
}

main().catch((err: unknown) => {
  if (err instanceof CliError) {
    const m = err.message;
    process.stderr.write(m.startsWith('usage:') ? m : `error: ${m}\n`);
    process.exit(m.startsWith('usage:') ? 2 : 1);
  }
  process.stderr.write(`error: ${(err as Error)?.message ?? String(err)}\n`);
  process.exit(1);
});
