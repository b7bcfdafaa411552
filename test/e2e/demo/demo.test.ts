import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../../../src/dev/cluster.ts';
import { run } from '../../../src/dev/proc.ts';
import { cluster } from '../fixture.ts';
import { installCrd } from '../operator/harness.ts';

describe('first-run experience', function () {
  this.timeout(300_000);

  it('npm run demo ends with the three expected RESULT lines', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'logtail-demo-'));
    const cwd = mkdtempSync(join(tmpdir(), 'logtail-demo-cwd-'));
    const r = await run(process.execPath, [join(REPO_ROOT, 'src', 'dev', 'demo.ts'), '--dir', dir], { cwd, env: { ...process.env, CI: '1' }, timeoutMs: 280_000 });
    const out = r.stdout + r.stderr;
    expect(r.code, out).to.equal(0);
    const results = out.split('\n').filter((l) => l.startsWith('RESULT '));
    expect(results, out).to.have.length(3);
    const byName = Object.fromEntries(results.map((l) => [l.split(' ')[1], l]));
    expect(byName['ci-build']).to.match(/phase=Complete result=Succeeded exitCode=0 /);
    expect(byName['ci-fails']).to.match(/phase=Complete result=Failed exitCode=2 /);
    expect(byName['fresh-node']).to.match(/phase=Complete result=Succeeded exitCode=0 retries=[1-9]\d* /);
    for (const l of results) expect(l).to.match(/object=file:\/\/\//);
  });

  it('the examples are valid LogTails and LogTailPolicies (server-side dry run)', async () => {
    const c = await cluster();
    await installCrd(c);
    for (const f of ['minimal.yaml', 'all-options.yaml', 'policy.yaml']) {
      const r = await c.kubectl(['apply', '--dry-run=server', '-n', 'default', '-f', join(REPO_ROOT, 'examples', f)]);
      expect(r.code, `${f}: ${r.stderr}`).to.equal(0);
    }
    for (const f of ['ci-build.yaml', 'ci-fails.yaml', 'fresh-node.yaml']) {
      const r = await c.kubectl(['apply', '--dry-run=server', '-n', 'default', '-f', join(REPO_ROOT, 'examples', 'demo', f)]);
      expect(r.code, `${f}: ${r.stderr}`).to.equal(0);
    }
  });
});
