// npm run demo [-- --keep] [--dir DIR]
// Local control plane + operator (filesystem store) + examples/demo/, shown
// live, then one RESULT line per LogTail. Exits non-zero if any LogTail ends
// other than its `demo.logtail.dev/expect` annotation says.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { REPO_ROOT, down, kubectl, up } from './cluster.ts';
import { freePort, sleep } from './proc.ts';

interface Lt {
  metadata: { name: string; annotations?: Record<string, string> };
  status?: {
    phase?: string;
    result?: string;
    reason?: string;
    bytes?: number;
    retries?: number;
    exitCode?: number;
    containers?: Array<{ name: string; object?: { uri: string } }>;
  };
}

const args = process.argv.slice(2);
const keep = args.includes('--keep');
const dirArg = args.indexOf('--dir');
const dir = resolve(dirArg >= 0 ? args[dirArg + 1]! : join(REPO_ROOT, '.demo'));
const timeoutMs = 180_000;
const live = !!process.stdout.isTTY && !process.env.CI;
const TERMINAL = new Set(['Complete', 'Incomplete', 'Failed']);

function say(m: string): void {
  process.stdout.write(m + '\n');
}

function check(lt: Lt): string[] {
  const want = lt.metadata.annotations?.['demo.logtail.dev/expect'] ?? '';
  const s = lt.status ?? {};
  const bad: string[] = [];
  for (const term of want.split(/\s+/).filter(Boolean)) {
    const m = term.match(/^(\w+)(=|>)(.+)$/);
    if (!m) continue;
    const [, key, op, value] = m as unknown as [string, string, string, string];
    const got = (s as Record<string, unknown>)[key];
    const ok = op === '=' ? String(got) === value : Number(got) > Number(value);
    if (!ok) bad.push(`${key}${op}${value} (got ${String(got)})`);
  }
  return bad;
}

async function main(): Promise<number> {
  mkdirSync(dir, { recursive: true });
  say(`LogTail demo: local control plane in ${dir}`);
  const state = await up({ dir, log: (m) => say(m) });
  let operator: ReturnType<typeof spawn> | undefined;
  try {
    const k = (a: string[], input?: string) => kubectl(state, a, { input });
    const crd = await k(['apply', '--server-side', '-f', join(REPO_ROOT, 'crds', 'logtail.dev_logtails.yaml'), '-f', join(REPO_ROOT, 'crds', 'logtail.dev_logtailpolicies.yaml')]);
    if (crd.code !== 0) throw new Error(`installing the CRDs failed: ${crd.stderr}`);
    await k(['wait', '--for=condition=Established', 'crd/logtails.logtail.dev', 'crd/logtailpolicies.logtail.dev', '--timeout=60s']);

    const storeDir = resolve('logtail-data');
    const opLog = join(dir, 'logs', 'operator.log');
    const fd = openSync(opLog, 'a');
    const port = await freePort();
    operator = spawn(process.execPath, [join(REPO_ROOT, 'src', 'cmd', 'main.ts'), '--store', `file://${storeDir}`, '--http-addr', `127.0.0.1:${port}`, '--status-interval', '1s'], {
      stdio: ['ignore', fd, fd],
      env: { ...process.env, ...state.env },
      detached: keep,
    });
    closeSync(fd);
    say(`operator started (pid ${operator.pid}), store file://${storeDir}, log ${opLog}`);

    const files = readdirSync(join(REPO_ROOT, 'examples', 'demo')).filter((f) => f.endsWith('.yaml')).sort();
    for (const f of files) {
      const r = await k(['apply', '-n', 'default', '-f', join(REPO_ROOT, 'examples', 'demo', f)]);
      if (r.code !== 0) throw new Error(`kubectl apply ${f}: ${r.stderr}`);
      process.stdout.write(r.stdout);
    }

    const end = Date.now() + timeoutMs;
    let items: Lt[] = [];
    let lastText = '';
    let drawn = 0;
    while (Date.now() < end) {
      const r = await k(['get', 'logtails', '-n', 'default', '-o', 'json']);
      if (r.code === 0) items = (JSON.parse(r.stdout) as { items: Lt[] }).items;
      const rows = items.map((lt) => {
        const s = lt.status ?? {};
        return `${lt.metadata.name.padEnd(12)} phase=${(s.phase ?? 'Pending').padEnd(10)} bytes=${String(s.bytes ?? 0).padEnd(8)} retries=${s.retries ?? 0}${s.reason ? ` reason=${s.reason}` : ''}`;
      });
      const text = rows.join('\n');
      if (live) {
        if (drawn > 0) process.stdout.write(`\x1b[${drawn}A\x1b[J`);
        process.stdout.write(text + '\n');
        drawn = rows.length;
      } else if (text !== lastText) {
        say(`--- ${new Date().toISOString()}\n${text}`);
      }
      lastText = text;
      if (items.length === files.length && items.every((lt) => TERMINAL.has(lt.status?.phase ?? ''))) break;
      await sleep(1000);
    }

    let failures = 0;
    say('');
    for (const lt of items.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))) {
      const s = lt.status ?? {};
      const objects = (s.containers ?? []).map((c) => c.object?.uri).filter(Boolean).join(',') || '-';
      say(`RESULT ${lt.metadata.name} phase=${s.phase ?? 'Pending'} result=${s.result ?? '-'} exitCode=${s.exitCode ?? '-'} retries=${s.retries ?? 0} object=${objects}`);
      const bad = check(lt);
      if (bad.length > 0) {
        failures++;
        say(`  unexpected: ${bad.join(', ')}${s.reason ? ` (reason ${s.reason})` : ''}`);
      }
    }
    if (items.length !== files.length) {
      failures++;
      say(`expected ${files.length} LogTails, found ${items.length}`);
    }
    say('');
    say(failures === 0 ? 'demo: every LogTail ended as expected' : `demo: ${failures} LogTail(s) did not end as expected; operator log: ${opLog}`);
    if (keep) {
      say(`read a captured log:  KUBECONFIG=${state.kubeconfigPath} bin/logtail get ci-build`);
      say(`\nkept running. Use:\n  source ${join(dir, 'env')}\n  export KUBECONFIG=${state.kubeconfigPath}\n  $LOGTAIL_TOOLCHAIN_BIN/kubectl get lt\nstop with: kill ${operator.pid}; npm run cluster -- down --dir ${dir}`);
      operator.unref();
      operator = undefined;
    }
    return failures === 0 ? 0 : 1;
  } finally {
    if (operator && operator.exitCode === null) {
      operator.kill('SIGTERM');
      await new Promise((r) => operator!.once('exit', r));
    }
    if (!keep) await down(dir);
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`demo failed: ${(err as Error)?.message ?? String(err)}\n`);
    try {
      process.stderr.write(readFileSync(join(dir, 'logs', 'operator.log'), 'utf8').split('\n').slice(-20).join('\n') + '\n');
    } catch {
      /* no operator log */
    }
    process.exit(1);
  },
);
