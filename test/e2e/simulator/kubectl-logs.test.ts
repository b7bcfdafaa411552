// Proof that `kubectl logs` through the real apiserver returns what the
// simulated containers wrote, byte for byte, with the kubelet's timestamp and
// sinceTime semantics.
import { expect } from 'chai';
import { cluster, uniqueName, type TestCluster } from '../fixture.ts';
import { createNamespace, createPod, kubectlRaw, recorded, sha256, timestampedLines, TS_RE, waitTerminated } from './helpers.ts';

describe('node simulator: kubectl logs through the apiserver', function () {
  this.timeout(180_000);
  let c: TestCluster;
  let ns: string;

  before(async () => {
    c = await cluster();
    ns = uniqueName('sim-logs');
    await createNamespace(c, ns);
  });

  it('returns a 50 MiB log byte-exactly (sha256 of the recorded output)', async () => {
    const lines = 262_144;
    const lineBytes = 200;
    await createPod(c, ns, 'big', { script: { containers: { app: { lines, lineBytes } } } });
    await waitTerminated(c, ns, 'big', 60_000);
    const rec = recorded(c, ns, 'big');
    expect(rec.length).to.equal(lines * lineBytes);
    const plain = await kubectlRaw(c, ['logs', '-n', ns, 'big']);
    expect(plain.code, plain.stderr).to.equal(0);
    expect(plain.stdout.length).to.equal(rec.length);
    expect(sha256(plain.stdout)).to.equal(sha256(rec));
    // With timestamps: one fixed-width prefix per line, the rest unchanged.
    const stamped = await kubectlRaw(c, ['logs', '-n', ns, 'big', '--timestamps']);
    expect(stamped.code, stamped.stderr).to.equal(0);
    expect(stamped.stdout.length).to.equal(rec.length + lines * 31);
    const pairs = timestampedLines(stamped.stdout);
    expect(pairs).to.have.length(lines);
    expect(pairs.every(([ts]) => TS_RE.test(ts))).to.equal(true);
    expect(sha256(Buffer.from(pairs.map(([, rest]) => rest + '\n').join(''), 'latin1'))).to.equal(sha256(rec));
  });

  it('timestampOffset: 35-byte prefixes with the offset; --since-time compares instants', async () => {
    await createPod(c, ns, 'offset', { script: { containers: { app: { lines: 30, lineBytes: 50, linesPerSecond: 10 } } }, faults: { timestampOffset: '-03:30' } });
    await waitTerminated(c, ns, 'offset');
    const rec = recorded(c, ns, 'offset');
    const stamped = await kubectlRaw(c, ['logs', '-n', ns, 'offset', '--timestamps']);
    expect(stamped.code, stamped.stderr).to.equal(0);
    expect(stamped.stdout.length).to.equal(rec.length + 30 * 36);
    const pairs = timestampedLines(stamped.stdout);
    expect(pairs.every(([ts]) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}-03:30$/.test(ts))).to.equal(true);
    expect(Buffer.from(pairs.map(([, rest]) => rest + '\n').join(''), 'latin1').equals(rec)).to.equal(true);
    // The 20th line's instant, written in UTC: lines from the start of that second on.
    const local = pairs[19]![0];
    const instant = new Date(Date.parse(local.slice(0, 19) + '-03:30'));
    const since = instant.toISOString().slice(0, 19) + 'Z';
    const expected = pairs.filter(([ts]) => Date.parse(ts.slice(0, 19) + '-03:30') >= instant.getTime()).map(([, rest]) => rest + '\n').join('');
    const after = await kubectlRaw(c, ['logs', '-n', ns, 'offset', `--since-time=${since}`]);
    expect(after.code, after.stderr).to.equal(0);
    expect(after.stdout.toString('latin1')).to.equal(expected);
    expect(expected.length).to.be.greaterThan(0).and.lessThan(rec.length);
  });

  it('returns >16 KiB lines, same-timestamp bursts and a last line without newline byte-exactly', async () => {
    const long = 'A'.repeat(40_000) + '\n';
    const tailFragment = 'B'.repeat(20_000);
    await createPod(c, ns, 'shapes', {
      script: {
        containers: {
          app: {
            segments: [
              { text: long, repeat: 2 },
              { lines: 40, lineBytes: 64, linesPerSecond: 100, burst: 8 },
              { text: tailFragment },
            ],
          },
        },
      },
    });
    await waitTerminated(c, ns, 'shapes');
    const rec = recorded(c, ns, 'shapes');
    expect(rec.length).to.equal(2 * long.length + 40 * 64 + tailFragment.length);
    const plain = await kubectlRaw(c, ['logs', '-n', ns, 'shapes']);
    expect(plain.code, plain.stderr).to.equal(0);
    expect(sha256(plain.stdout)).to.equal(sha256(rec));

    const stamped = await kubectlRaw(c, ['logs', '-n', ns, 'shapes', '--timestamps']);
    expect(stamped.code, stamped.stderr).to.equal(0);
    const pairs = timestampedLines(stamped.stdout);
    // 2 long lines + 40 short ones + the fragment: each exactly one prefix,
    // although the long lines and the fragment are several 16 KiB records.
    expect(pairs).to.have.length(43);
    expect(pairs.every(([ts]) => TS_RE.test(ts))).to.equal(true);
    expect(pairs[0]![1]).to.equal(long.slice(0, -1));
    expect(pairs[42]![1]).to.equal(tailFragment);
    expect(stamped.stdout.at(-1)).to.not.equal(10);
    const burstTs = pairs.slice(2, 42).map(([ts]) => ts);
    expect(new Set(burstTs).size).to.equal(5);
    for (let g = 0; g < 5; g++) expect(new Set(burstTs.slice(g * 8, g * 8 + 8)).size).to.equal(1);
    // Stripping the prefixes gives back the recorded bytes.
    const stripped = pairs.map(([, rest], i) => (i < 42 ? rest + '\n' : rest)).join('');
    expect(sha256(Buffer.from(stripped, 'latin1'))).to.equal(sha256(rec));
  });

  it('--timestamps --since-time: the apiserver truncates to the second, the kubelet keeps records stamped at or after it', async () => {
    await createPod(c, ns, 'since', { script: { containers: { app: { lines: 25, lineBytes: 40, linesPerSecond: 10 } } } });
    await waitTerminated(c, ns, 'since');
    const all = await kubectlRaw(c, ['logs', '-n', ns, 'since', '--timestamps']);
    expect(all.code, all.stderr).to.equal(0);
    const pairs = timestampedLines(all.stdout);
    expect(pairs).to.have.length(25);
    // A line with an earlier line in the same second, asked for with full precision.
    const i = pairs.findIndex(([ts], k) => k > 0 && ts.slice(0, 19) === pairs[k - 1]![0].slice(0, 19) && k < 20);
    expect(i, 'two lines in one second').to.be.greaterThan(0);
    const since = pairs[i]![0];
    const r = await kubectlRaw(c, ['logs', '-n', ns, 'since', '--timestamps', `--since-time=${since}`]);
    expect(r.code, r.stderr).to.equal(0);
    const second = since.slice(0, 19);
    const expected = pairs.filter(([ts]) => ts.slice(0, 19) >= second);
    const got = timestampedLines(r.stdout);
    expect(got).to.deep.equal(expected);
    // The line just before the requested time (same second) is included: truncation.
    expect(got[0]![0] < since).to.equal(true);
    // A later whole second cuts the earlier lines off.
    const next = pairs.find(([ts]) => ts.slice(0, 19) > second)![0].slice(0, 19) + 'Z';
    const r2 = await kubectlRaw(c, ['logs', '-n', ns, 'since', `--since-time=${next}`]);
    expect(r2.stdout.toString()).to.equal(
      pairs
        .filter(([ts]) => ts.slice(0, 19) >= next.slice(0, 19))
        .map(([, rest]) => rest + '\n')
        .join(''),
    );
  });

  it('tail and limit-bytes behave as the kubelet does', async () => {
    await createPod(c, ns, 'tail', { script: { containers: { app: { text: 'one\ntwo\nthree\nfour\n' } } } });
    await waitTerminated(c, ns, 'tail');
    const tail = await kubectlRaw(c, ['logs', '-n', ns, 'tail', '--tail=2']);
    expect(tail.stdout.toString()).to.equal('three\nfour\n');
    const limit = await kubectlRaw(c, ['logs', '-n', ns, 'tail', '--limit-bytes=6']);
    expect(limit.stdout.toString()).to.equal('one\ntw');
  });
});
