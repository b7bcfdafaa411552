// Node simulator process, started by the cluster launcher:
//   node src/dev/simulator/main.ts --kubeconfig FILE --sim-dir DIR --state-dir DIR \
//     --tls-cert FILE --tls-key FILE [--nodes sim-1,sim-2]
// Writes <state-dir>/ready.json ({ "pid": n, "nodes": { "sim-1": port, … } })
// once the nodes are registered and their HTTPS endpoints listen; SIGTERM stops it.
import { parseArgs } from 'node:util';
import { Simulator } from './simulator.ts';

function usage(msg: string): never {
  process.stderr.write(`${msg}\nusage: main.ts --kubeconfig FILE --sim-dir DIR --state-dir DIR --tls-cert FILE --tls-key FILE [--nodes sim-1,sim-2]\n`);
  process.exit(2);
}

const { values } = parseArgs({
  options: {
    kubeconfig: { type: 'string' },
    'sim-dir': { type: 'string' },
    'state-dir': { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    nodes: { type: 'string', default: 'sim-1,sim-2' },
  },
  strict: true,
});

const required = ['kubeconfig', 'sim-dir', 'state-dir', 'tls-cert', 'tls-key'] as const;
for (const k of required) if (!values[k]) usage(`missing --${k}`);
const nodes = values.nodes!
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
if (nodes.length === 0) usage('--nodes names no node');

const sim = new Simulator({
  kubeconfig: values.kubeconfig!,
  simDir: values['sim-dir']!,
  stateDir: values['state-dir']!,
  tlsCert: values['tls-cert']!,
  tlsKey: values['tls-key']!,
  nodes,
});

// Bad input must never take the simulator down; log and carry on.
process.on('uncaughtException', (err) => sim.log(`uncaught: ${err.stack ?? String(err)}`));
process.on('unhandledRejection', (err) => sim.log(`unhandled rejection: ${(err as Error)?.stack ?? String(err)}`));

let stopping = false;
const shutdown = (sig: string) => {
  if (stopping) return;
  stopping = true;
  sim.log(`${sig}: stopping`);
  const hard = setTimeout(() => process.exit(0), 3000);
  hard.unref();
  sim
    .stop()
    .catch(() => undefined)
    .finally(() => process.exit(0));
};
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

try {
  await sim.start();
} catch (err) {
  sim.log(`start failed: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
}
