// The hollow kubelet's own Go tests (the simulator-script port compared with
// the TypeScript simulator, the runtime's log files) run with the suite, so a
// change on either side of that port fails CI. Go is part of the dev
// toolchain; without it the toolchain could not have been built.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from '../../../src/dev/cluster.ts';

describe('hollow kubelet Go tests', function () {
  this.timeout(15 * 60_000);

  it('go test ./internal/... passes (script port checked against the simulator)', () => {
    const r = spawnSync('go', ['test', '-v', '-trimpath', '-count=1', './internal/...'], {
      cwd: join(REPO_ROOT, 'hollow-kubelet'),
      encoding: 'utf8',
      env: { ...process.env, CGO_ENABLED: '0', GOTOOLCHAIN: 'local', GOFLAGS: '-buildvcs=false' },
    });
    if (r.error) throw r.error;
    const out = `${r.stdout}\n${r.stderr}`;
    expect(r.status, out).to.equal(0);
    expect(out).to.match(/^ok\s+\S+\/internal\/script/m);
    expect(out).to.match(/^ok\s+\S+\/internal\/runtime/m);
    // The comparison with a fresh simulator run skips itself without node_modules/.bin/node; here it must run.
    expect(out).not.to.match(/--- SKIP/);
  });
});
