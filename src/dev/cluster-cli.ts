// npm run cluster -- up|down|env|add-node|remove-node --dir DIR [options]
import { resolve } from 'node:path';
import { addNode, down, loadState, removeNode, up } from './cluster.ts';

function usage(): never {
  process.stderr.write(
    [
      'usage: npm run cluster -- up --dir DIR [--nodes a,b] [--no-simulator] [--no-kubelet]',
      '       npm run cluster -- down --dir DIR',
      '       npm run cluster -- env --dir DIR',
      '       npm run cluster -- add-node --dir DIR --name NAME --csr-delay SECONDS [--container-log-max-size SIZE]',
      '       npm run cluster -- remove-node --dir DIR --name NAME',
      '',
    ].join('\n'),
  );
  process.exit(2);
}

const [cmd, ...rest] = process.argv.slice(2);
const opts: Record<string, string> = {};
const flags = new Set<string>();
for (let i = 0; i < rest.length; i++) {
  const a = rest[i]!;
  if (a === '--no-simulator' || a === '--no-kubelet') flags.add(a);
  else if (/^--[a-z-]+=/.test(a)) opts[a.slice(2, a.indexOf('='))] = a.slice(a.indexOf('=') + 1);
  else if (/^--[a-z-]+$/.test(a) && rest[i + 1] !== undefined) opts[a.slice(2)] = rest[++i]!;
  else usage();
}
const known = new Set(['dir', 'nodes', 'name', 'csr-delay', 'container-log-max-size']);
if (!cmd || !opts.dir || Object.keys(opts).some((k) => !known.has(k))) usage();
const dir = resolve(opts.dir);

try {
  if (cmd === 'up') {
    const state = await up({ dir, nodes: opts.nodes?.split(','), simulator: !flags.has('--no-simulator'), kubelet: !flags.has('--no-kubelet') });
    process.stdout.write(`cluster up in ${state.dir}\n  source ${state.dir}/env\n  export KUBECONFIG=${state.kubeconfigPath}\n`);
  } else if (cmd === 'down') {
    await down(dir);
    process.stdout.write(`cluster in ${dir} stopped\n`);
  } else if (cmd === 'env') {
    process.stdout.write(Object.entries(loadState(dir).env).map(([k, v]) => `${k}=${v}`).join('\n') + '\n');
  } else if (cmd === 'add-node') {
    if (!opts.name || opts['csr-delay'] === undefined) usage();
    const delay = Number(opts['csr-delay']);
    const n = await addNode(dir, { name: opts.name, csrDelaySeconds: delay, containerLogMaxSize: opts['container-log-max-size'] });
    process.stdout.write(`node ${n.name} Ready at ${n.nodeIp}:${n.port}; its serving certificate is signed in ${delay}s (csr-approver pid ${n.approverPid})\n`);
  } else if (cmd === 'remove-node') {
    if (!opts.name) usage();
    await removeNode(dir, opts.name);
    process.stdout.write(`node ${opts.name} stopped and deleted\n`);
  } else usage();
} catch (err) {
  process.stderr.write(`cluster ${cmd}: ${(err as Error).message}\n`);
  process.exit(1);
}
