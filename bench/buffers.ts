// npm run bench -- buffers [--streams 48 --mib 24 --s3-kib-s 4096 --buffer-memory 64Mi]
// Memory bounded by design (issue 11 item 1): N captures at once into the S3
// server reached through a throttling TCP proxy (the store is real, only
// slower than the logs), operator RSS sampled every 100 ms from /proc, the
// spool directory's size sampled alongside; every object checked byte-exact
// against the simulator's record of what each container wrote.
import { createHash } from 'node:crypto';
import { createReadStream, readdirSync, statSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { apiRequest, applyJson, finish, kubectl, load1, logTail, parseOptions, rssKiB, simPod, sleep, startOperator, table, withCluster } from './lib.ts';

/** A TCP proxy that forwards each direction at most `bytesPerSec` (shared by all connections, per direction). */
function throttlingProxy(target: URL, bytesPerSec: number): Promise<{ port: number; close(): void }> {
  let tokens = { up: bytesPerSec / 10, down: bytesPerSec / 10 };
  const waiting: Array<() => void> = [];
  const tick = setInterval(() => {
    tokens = { up: bytesPerSec / 10, down: bytesPerSec / 10 };
    for (const w of waiting.splice(0)) w();
  }, 100);
  const pump = (from: Socket, to: Socket, dir: 'up' | 'down') => {
    const queue: Buffer[] = [];
    let busy = false;
    const drain = () => {
      busy = true;
      while (queue.length > 0) {
        if (tokens[dir] <= 0) {
          waiting.push(drain);
          return;
        }
        const b = queue[0]!;
        const n = Math.min(b.length, Math.max(1, Math.floor(tokens[dir])));
        tokens[dir] -= n;
        to.write(b.subarray(0, n));
        if (n === b.length) queue.shift();
        else queue[0] = b.subarray(n);
      }
      busy = false;
      from.resume();
    };
    from.on('data', (b: Buffer) => {
      queue.push(b);
      from.pause();
      if (!busy) drain();
    });
    from.on('end', () => to.end());
    from.on('error', () => to.destroy());
  };
  const server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    pump(client, upstream, 'up');
    pump(upstream, client, 'down');
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      resolve({ port, close: () => (clearInterval(tick), server.close()) });
    });
  });
}

function dirBytes(dir: string): number {
  let n = 0;
  try {
    for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) n += statSync(join(e.parentPath, e.name)).size;
  } catch {
    /* not created yet, or a file removed while listing */
  }
  return n;
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path) as AsyncIterable<Buffer>) h.update(c);
  return h.digest('hex');
}

interface Lt {
  status?: { phase?: string; containers?: Array<{ object?: { uri?: string; sha256?: string } }> };
}

export async function buffersBench(argv: string[]): Promise<void> {
  const o = parseOptions('buffers', argv, {
    streams: { default: 48, help: 'captures at once (each its own pod)' },
    mib: { default: 24, help: 'MiB each container writes' },
    lps: { default: 5000, help: 'lines per second per container (200-byte lines; 5000 = ~0.95 MiB/s)' },
    's3-kib-s': { default: 8192, help: 'throughput of the proxy in front of the S3 server, KiB/s per direction, all connections together' },
    'buffer-memory': { default: '64Mi', help: 'the operator\'s --buffer-memory' },
    'max-streams': { default: 64, help: 'the operator\'s --max-concurrent-streams' },
    entry: { default: '', help: 'another operator entry point to measure, e.g. an older checkout\'s src/cmd/main.ts (then --spool-dir and --buffer-memory are not passed)' },
  });
  const ns = 'buffers';
  const lines = Math.floor((o.mib * 1048576) / 200);
  await withCluster(async (state, dir) => {
    await kubectl(state, ['create', 'namespace', ns]);
    const proxy = await throttlingProxy(new URL(state.s3.endpoint), o['s3-kib-s'] * 1024);
    const spool = join(dir, 'spool');
    const op = await startOperator(state, dir, {
      name: 'op-buffers',
      store: `s3://${state.s3.bucket}/buffers`,
      args: ['--watch-namespaces', ns, '--s3-endpoint', `http://127.0.0.1:${proxy.port}`, '--max-concurrent-streams', String(o['max-streams']), ...(o.entry ? [] : ['--spool-dir', spool, '--buffer-memory', o['buffer-memory']])],
      ...(o.entry ? { entry: o.entry } : {}),
    });
    const idleRss = rssKiB(op.pid) / 1024;
    const l0 = load1();
    let rssPeak = 0;
    let spoolPeak = 0;
    let sampling = true;
    // the operator's own view, once a second: V8 heap and memory outside it (Buffers)
    const mem = { heapTotal: 0, heapUsed: 0, external: 0 };
    const sampler = (async () => {
      for (let i = 0; sampling; i++) {
        rssPeak = Math.max(rssPeak, rssKiB(op.pid) / 1024);
        spoolPeak = Math.max(spoolPeak, dirBytes(spool) / 1048576);
        if (i % 10 === 0) {
          const text = await (await fetch(`http://127.0.0.1:${op.port}/metrics`)).text().catch(() => '');
          const get = (name: string) => Number(text.match(new RegExp(`^${name} (\\S+)`, 'm'))?.[1] ?? 0) / 1048576;
          mem.heapTotal = Math.max(mem.heapTotal, get('nodejs_heap_size_total_bytes'));
          mem.heapUsed = Math.max(mem.heapUsed, get('nodejs_heap_size_used_bytes'));
          mem.external = Math.max(mem.external, get('nodejs_external_memory_bytes'));
        }
        await sleep(100);
      }
    })();
    const t0 = performance.now();
    const names = Array.from({ length: o.streams }, (_, i) => `buf-${i + 1}`);
    let exact = true;
    const failures: string[] = [];
    try {
      for (const name of names) await applyJson(state, logTail(ns, name, { podName: name }));
      for (const name of names) await applyJson(state, simPod(ns, name, { containers: { main: { lines, lineBytes: 200, linesPerSecond: o.lps, exitCode: 0 } } }));
      const pending = new Set(names);
      const deadline = Date.now() + 30 * 60_000;
      while (pending.size > 0) {
        if (Date.now() > deadline) throw new Error(`${pending.size} captures not done after 30 min`);
        const list = await apiRequest<{ items: Array<Lt & { metadata: { name: string } }> }>(state, 'GET', `/apis/logtail.dev/v1alpha1/namespaces/${ns}/logtails`);
        for (const lt of list.items) {
          const phase = lt.status?.phase;
          if (!pending.has(lt.metadata.name) || !phase || !['Complete', 'Failed', 'Incomplete'].includes(phase)) continue;
          pending.delete(lt.metadata.name);
          if (phase !== 'Complete') failures.push(`${lt.metadata.name}: ${phase}`);
        }
        await sleep(1000);
      }
    } finally {
      sampling = false;
      await sampler;
    }
    const secs = (performance.now() - t0) / 1000;
    await op.stop();
    proxy.close();
    // byte-exact: each object against the simulator's record of the container's output
    const s3 = new S3Client({ endpoint: state.s3.endpoint, region: state.s3.region, forcePathStyle: true, credentials: { accessKeyId: state.s3.accessKey, secretAccessKey: state.s3.secretKey } });
    for (const name of names) {
      const lt = await apiRequest<Lt>(state, 'GET', `/apis/logtail.dev/v1alpha1/namespaces/${ns}/logtails/${name}`);
      const uri = lt.status?.containers?.[0]?.object?.uri;
      if (!uri) {
        exact = false;
        continue;
      }
      const u = new URL(uri);
      const got = await s3.send(new GetObjectCommand({ Bucket: u.host, Key: decodeURIComponent(u.pathname.slice(1)) }));
      const h = createHash('sha256');
      for await (const c of got.Body as AsyncIterable<Buffer>) h.update(c);
      const want = await sha256File(join(state.simDir, ns, name, 'main.log')).catch(() => 'simulator record missing');
      if (h.digest('hex') !== want) {
        exact = false;
        failures.push(`${name}: stored object differs`);
      }
    }
    s3.destroy();
    if (failures.length) console.log(`failures: ${failures.join('; ')}`);
    table(['streams', 'MiB each', 'S3 KiB/s', 'buffer-memory', 'idle RSS MiB', 'peak RSS MiB', 'peak spool MiB', 'seconds', 'exact', 'load1 at start'], [[o.streams, o.mib, o['s3-kib-s'], o['buffer-memory'], idleRss, rssPeak, spoolPeak, secs, String(exact), l0]]);
    console.log(`per stream above idle: ${((rssPeak - idleRss) / o.streams).toFixed(2)} MiB; peaks from the operator's /metrics: heap total ${mem.heapTotal.toFixed(0)} MiB, heap used ${mem.heapUsed.toFixed(0)} MiB, external ${mem.external.toFixed(0)} MiB`);
    finish('buffers', { options: o, idleRss, rssPeak, spoolPeak, secs, failures, operatorMemoryPeaksMiB: mem }, { streams: o.streams, rss_peak_mib: rssPeak, spool_peak_mib: spoolPeak, exact });
  });
}
