// npm run cluster -- up|down|env --dir DIR
import { resolve } from 'node:path';
import { down, loadState, up } from './cluster.ts';

function usage(): never {
  process.stderr.write('usage: npm run cluster -- up --dir DIR [--nodes a,b] [--no-simulator]\n       npm run cluster -- down --dir DIR\n       npm run cluster -- env --dir DIR\n');
  process.exit(2);
}

const [cmd, ...rest] = process.argv.slice(2);
let dir: string | undefined;
let nodes: string[] | undefined;
let simulator = true;
for (let i = 0; i < rest.length; i++) {
  const a = rest[i]!;
  if (a === '--dir') dir = rest[++i];
  else if (a.startsWith('--dir=')) dir = a.slice(6);
  else if (a === '--nodes') nodes = rest[++i]?.split(',');
  else if (a === '--no-simulator') simulator = false;
  else usage();
}
if (!cmd || !dir) usage();

try {
  if (cmd === 'up') {
    const state = await up({ dir: resolve(dir), nodes, simulator });
    process.stdout.write(`cluster up in ${state.dir}\n  source ${state.dir}/env\n  export KUBECONFIG=${state.kubeconfigPath}\n`);
  } else if (cmd === 'down') {
    await down(resolve(dir));
    process.stdout.write(`cluster in ${resolve(dir)} stopped\n`);
  } else if (cmd === 'env') {
    process.stdout.write(Object.entries(loadState(dir).env).map(([k, v]) => `${k}=${v}`).join('\n') + '\n');
  } else usage();
} catch (err) {
  process.stderr.write(`cluster ${cmd}: ${(err as Error).message}\n`);
  process.exit(1);
}
