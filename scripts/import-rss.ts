// node scripts/import-rss.ts MODULE…  (issue 11 item 2, "Idle cost")
// For each module: a fresh node process (this one's binary) imports only that
// module (a package name, a package path, or a file) and reports its RSS, heap
// used, how many modules it resolved, and which files of
// @kubernetes/client-node outside dist/gen/ (with the count of dist/gen/
// files). `nothing` imports nothing.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const probe = `
import { registerHooks } from 'node:module';
const seen = new Set();
registerHooks({ resolve(s, c, next) { const r = next(s, c); seen.add(r.url); return r; } });
const target = process.argv.at(-1);
if (target !== 'nothing') await import(target);
const m = process.memoryUsage();
const cn = [...seen].filter((u) => u.includes('/@kubernetes/client-node/dist/'));
console.log(JSON.stringify({
  rss: m.rss / 1048576, heapUsed: m.heapUsed / 1048576, modules: seen.size,
  clientNode: cn.filter((u) => !u.includes('/dist/gen/')).map((u) => u.replace(/.*\\/client-node\\/dist\\//, '')),
  generated: cn.filter((u) => u.includes('/dist/gen/')).length,
}));
`;

const rows: string[][] = [['import', 'RSS MiB', 'heap used MiB', 'modules', 'client-node files (+ dist/gen)']];
for (const arg of process.argv.slice(2)) {
  const target = arg !== 'nothing' && existsSync(arg) ? pathToFileURL(isAbsolute(arg) ? arg : resolve(arg)).href : arg;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', probe, '--', target], { encoding: 'utf8' });
  const r = JSON.parse(out.trim().split('\n').at(-1)!) as { rss: number; heapUsed: number; modules: number; clientNode: string[]; generated: number };
  rows.push([arg, r.rss.toFixed(1), r.heapUsed.toFixed(1), String(r.modules), `${r.clientNode.join(' ') || '-'}${r.generated ? ` (+${r.generated})` : ''}`]);
}
const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
