// Runs mocha programmatically so the run ends with the one summary line CI
// recognises ("N passed, N failed"), whatever mocha's reporter printed.
import Mocha from 'mocha';
import { readdirSync, statSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const suites = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const grepArg = process.argv.find((a) => a.startsWith('--grep='));
const chosen = suites.length === 0 || suites.includes('all') ? ['unit', 'e2e'] : suites;

function collect(dir: string): string[] {
  let out: string[] = [];
  if (dir.endsWith('.test.ts')) return [resolve(dir)];
  let entries: string[];
  try {
    entries = readdirSync(dir).sort();
  } catch {
    return out;
  }
  for (const e of entries) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out = out.concat(collect(p));
    else if (e.endsWith('.test.ts')) out.push(resolve(p));
  }
  return out;
}

const mocha = new Mocha({
  reporter: 'spec',
  timeout: 120_000,
  slow: 5_000,
  ...(grepArg ? { grep: grepArg.slice('--grep='.length) } : {}),
});
const files = chosen.flatMap((s) => collect(s.startsWith('test/') ? s : join('test', s)));
for (const f of files) mocha.addFile(f);

let passed = 0;
let failed = 0;
await mocha.loadFilesAsync();
const runner = mocha.run((failures) => {
  // Hooks that fail are failures too; mocha counts them in `failures`.
  failed = Math.max(failed, failures);
  const line = `${passed} passed, ${failed} failed`;
  mkdirSync('.test-results', { recursive: true });
  writeFileSync(join('.test-results', `${chosen.join('+')}.txt`), line + '\n');
  console.log(line);
  // Informers, sockets or child handles left by a failing test must not keep
  // CI waiting: the summary is written, so leave.
  const code = failed > 0 ? 1 : 0;
  setTimeout(() => process.exit(code), 200);
});
runner.on('pass', () => passed++);
runner.on('fail', () => failed++);
