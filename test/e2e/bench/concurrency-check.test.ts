// A small `npm run bench -- concurrency` as a correctness check (issue 11
// item 5): 24 captures at once over 3 simulated nodes into S3, every object
// byte-exact, every LogTail Complete, and no watch opened per capture. No
// timing or memory assertion: those are the benchmark's figures, not a test.
import { expect } from 'chai';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { concurrencyBench } from '../../../bench/concurrency.ts';

describe('bench concurrency (small, correctness only)', function () {
  this.timeout(600_000);

  it('captures 24 pods on 3 nodes at once into S3, each byte-exact and Complete, with no watch per capture', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'logtail-bench-results-'));
    const saved = process.env.LOGTAIL_BENCH_RESULTS;
    process.env.LOGTAIL_BENCH_RESULTS = dir;
    try {
      await concurrencyBench(['--captures', '24', '--nodes', '3', '--mib', '0.25', '--seconds', '5', '--max-streams', '64']);
    } finally {
      if (saved === undefined) delete process.env.LOGTAIL_BENCH_RESULTS;
      else process.env.LOGTAIL_BENCH_RESULTS = saved;
    }
    const files = readdirSync(dir).filter((f) => f.startsWith('concurrency-'));
    expect(files).to.have.length(1);
    const r = JSON.parse(readFileSync(join(dir, files[0]!), 'utf8')) as { bench_line: { captures: number; exact: boolean; watches: number }; notComplete: unknown[] };
    expect(r.notComplete).to.deep.equal([]);
    expect(r.bench_line.captures).to.equal(24);
    expect(r.bench_line.exact).to.equal(true);
    expect(r.bench_line.watches).to.equal(0);
  });
});
