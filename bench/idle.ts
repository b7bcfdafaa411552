// npm run bench -- idle [--settle 20 --samples 10 --dist dist --operator-env K=V,K2=V2]
// Idle cost (issue 11 item 2): the operator started against the local control
// plane with nothing to capture, as `npm start` runs it (src/cmd/main.ts,
// type-stripped) and as the image runs it (the compiled DIST/src/cmd/main.js,
// `npm run build` first), with a file store and with an S3 store. After
// `--settle` seconds, RSS from /proc and heap from the operator's own
// /metrics (nodejs_heap_size_used_bytes, nodejs_heap_size_total_bytes),
// sampled `--samples` times a second apart; medians.
import { existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { REPO_ROOT, finish, kubectl, load1, median, parseOptions, rssKiB, sleep, spread, startOperator, table, withCluster } from './lib.ts';

async function heap(port: number): Promise<{ used: number; total: number }> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const get = (name: string) => Number(text.match(new RegExp(`^${name} (\\S+)`, 'm'))?.[1] ?? NaN);
  return { used: get('nodejs_heap_size_used_bytes'), total: get('nodejs_heap_size_total_bytes') };
}

export async function idleBench(argv: string[]): Promise<void> {
  const o = parseOptions('idle', argv, {
    settle: { default: 20, help: 'seconds after /readyz before sampling' },
    samples: { default: 10, help: 'samples, one a second' },
    dist: { default: 'dist', help: 'directory of the compiled build (relative to the repository)' },
    'operator-env': { default: '', help: 'extra environment for the operator, "K=V,K2=V2" (e.g. NODE_OPTIONS=--max-semi-space-size=2)' },
  });
  const env: Record<string, string> = Object.fromEntries(o['operator-env'].split(',').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  const distMain = join(isAbsolute(o.dist) ? o.dist : join(REPO_ROOT, o.dist), 'src', 'cmd', 'main.js');
  if (!existsSync(distMain)) throw new Error(`${distMain} missing: npm run build first`);
  await withCluster(async (state, dir) => {
    await kubectl(state, ['create', 'namespace', 'idle']);
    const configs = [
      { name: 'npm start, file store', entry: join(REPO_ROOT, 'src', 'cmd', 'main.ts'), store: `file://${join(dir, 'store')}`, args: [] as string[] },
      { name: `${o.dist}, file store`, entry: distMain, store: `file://${join(dir, 'store')}`, args: [] },
      { name: `${o.dist}, s3 store`, entry: distMain, store: `s3://${state.s3.bucket}/idle`, args: ['--s3-endpoint', state.s3.endpoint] },
    ];
    const rows: Array<Record<string, number | string>> = [];
    for (const c of configs) {
      const op = await startOperator(state, dir, { name: `op-idle-${rows.length}`, entry: c.entry, store: c.store, args: ['--watch-namespaces', 'idle', ...c.args], env });
      const l = load1();
      await sleep(o.settle * 1000);
      const rss: number[] = [];
      const used: number[] = [];
      const total: number[] = [];
      for (let i = 0; i < o.samples; i++) {
        rss.push(rssKiB(op.pid) / 1024);
        const h = await heap(op.port);
        used.push(h.used / 1048576);
        total.push(h.total / 1048576);
        await sleep(1000);
      }
      await op.stop();
      rows.push({ config: c.name, rss_mib: median(rss), rss_spread: spread(rss), heap_used_mib: median(used), heap_total_mib: median(total), load1: l });
    }
    table(['config', 'RSS MiB', 'RSS spread', 'heap used MiB', 'heap total MiB', 'load1'], rows.map((r) => [r.config!, r.rss_mib!, r.rss_spread!, r.heap_used_mib!, r.heap_total_mib!, r.load1!]));
    finish('idle', { options: o, rows }, { dist_file_rss_mib: rows[1]!.rss_mib!, dist_s3_rss_mib: rows[2]!.rss_mib!, npm_start_rss_mib: rows[0]!.rss_mib!, dist_file_heap_used_mib: rows[1]!.heap_used_mib! });
  });
}
