// Issue 13 item 6: every command the README and the demo print must work as
// printed on a machine whose system Node is older than the CLI needs (these
// machines ship Node 20). So none of them may start with a bare `node`, and the
// bin wrapper must run the CLI with the pinned Node even when an old `node`
// comes first on PATH.
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../../src/dev/cluster.ts';

/** Commands in shell code blocks and `inline code` of a Markdown file, and in say(...) strings of the demo. */
function printedCommands(): Array<{ where: string; cmd: string }> {
  const out: Array<{ where: string; cmd: string }> = [];
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  for (const block of readme.matchAll(/```(?:sh|bash|console)\n([\s\S]*?)```/g)) for (const line of block[1]!.split('\n')) if (line.trim()) out.push({ where: 'README.md', cmd: line.trim() });
  for (const span of readme.replace(/\n/g, ' ').matchAll(/`([^`]+)`/g)) out.push({ where: 'README.md', cmd: span[1]!.trim() });
  const demo = readFileSync(join(REPO_ROOT, 'src', 'dev', 'demo.ts'), 'utf8');
  for (const s of demo.matchAll(/say\(`([^`]*)`\)/g)) out.push({ where: 'src/dev/demo.ts', cmd: s[1]! });
  return out;
}

const SYSTEM_PATH = '/usr/local/bin:/usr/bin:/bin';

describe('cmd: the CLI works as printed without a new enough system Node', function () {
  this.timeout(60_000);

  it('no command in the README or the demo starts the system `node` (node_modules/.bin/node, npm run, bin/logtail do)', () => {
    const bad = printedCommands().filter(({ cmd }) => /(^|[\s;&|=]|\$\{[^}]*\}\s)node\s+(src|dist|scripts|test)\//.test(cmd) && !/node_modules\/\.bin\/node\s/.test(cmd));
    expect(bad, JSON.stringify(bad, null, 1)).to.deep.equal([]);
    // the check would see the old hint
    expect(/(^|[\s;&|=])node\s+(src|dist)\//.test('KUBECONFIG=/x node src/cmd/cli.ts get ci-build')).to.equal(true);
  });

  it('the demo prints a CLI command that exists', () => {
    const hint = printedCommands().find((c) => c.where === 'src/dev/demo.ts' && /get ci-build/.test(c.cmd));
    expect(hint?.cmd).to.match(/ bin\/logtail get ci-build$/);
    expect(existsSync(join(REPO_ROOT, 'bin', 'logtail'))).to.equal(true);
  });

  for (const name of ['logtail', 'kubectl-logtail']) {
    it(`bin/${name} runs the CLI with the pinned Node while an old system node comes first on PATH`, () => {
      const sys = spawnSync('node', ['--version'], { env: { PATH: SYSTEM_PATH }, encoding: 'utf8' });
      if (sys.status === 0) process.stderr.write(`      (system node on PATH: ${sys.stdout.trim()})\n`);
      const r = spawnSync(join(REPO_ROOT, 'bin', name), ['--help'], { env: { PATH: SYSTEM_PATH, HOME: '/tmp' }, encoding: 'utf8' });
      expect(r.stderr, r.stderr).to.not.match(/needs Node\.js/);
      expect(r.status).to.equal(2);
      expect(r.stderr).to.match(/^usage:\n {2}logtail get NAME/);
    });
  }

  it('package.json bin points at the wrapper, and `npm run logtail --` works with the system npm', () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string>; scripts: Record<string, string> };
    expect(pkg.bin).to.deep.equal({ logtail: 'bin/logtail', 'kubectl-logtail': 'bin/kubectl-logtail' });
    let npm: string | undefined;
    try {
      npm = execFileSync('sh', ['-c', 'command -v npm'], { env: { PATH: SYSTEM_PATH }, encoding: 'utf8' }).trim();
    } catch {
      /* no npm on this machine's system PATH */
    }
    if (!npm) {
      expect(process.env.CI, 'CI must have npm').to.not.equal('true');
      return;
    }
    const r = spawnSync(npm, ['run', '--silent', 'logtail', '--', '--help'], { cwd: REPO_ROOT, env: { PATH: SYSTEM_PATH, HOME: process.env.HOME ?? '/tmp' }, encoding: 'utf8' });
    expect(r.stderr).to.not.match(/needs Node\.js/);
    expect(r.stderr).to.match(/^usage:/);
  });
});
