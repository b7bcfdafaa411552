// npm run bench -- NAME [options]   (npm run bench -- NAME --help for the options)
// Each benchmark starts its own local control plane, prints a table, writes
// JSON under bench/results/ and ends with one line `BENCH NAME key=value …`.
import { buffersBench } from './buffers.ts';
import { concurrencyBench } from './concurrency.ts';
import { fairnessBench } from './fairness.ts';
import { idleBench } from './idle.ts';
import { latencyBench } from './latency.ts';
import { shardingBench } from './sharding.ts';
import { streamBench } from './stream.ts';

const BENCHES: Record<string, ((argv: string[]) => Promise<void>) | undefined> = {
  stream: streamBench,
  latency: latencyBench,
  idle: idleBench,
  buffers: buffersBench,
  concurrency: concurrencyBench,
  fairness: fairnessBench,
  sharding: shardingBench,
};

const [name, ...rest] = process.argv.slice(2);
if (!name || name === '--help' || name === '-h' || !(name in BENCHES)) {
  console.log(`usage: npm run bench -- NAME [--help | options]\nNAME: ${Object.keys(BENCHES).join(', ')}`);
  process.exit(name && name !== '--help' && name !== '-h' ? 2 : 0);
}
const fn = BENCHES[name];
if (!fn) {
  console.error(`bench ${name}: not implemented yet (issue 11; see docs/benchmarks.md)`);
  process.exit(3);
}
fn(rest).catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
