// `logtail logs -f` end to end: the log is printed while the LogTail is
// Streaming (read from pods/log with the CLI's own kubeconfig), and once the
// capture is Complete the CLI checks the printed bytes against the stored
// object and says so on stderr. A finished LogTail prints the verified object.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../../src/dev/cluster.ts';
import { run as runCmd, sleep } from '../../../src/dev/proc.ts';
import { apply, getLogTail, logTailManifest, podManifest, simOutputPath, uriToPath, useOperatorSuite, waitForFile, waitForLogTail } from './harness.ts';

const CLI = join(REPO_ROOT, 'src', 'cmd', 'logtail.ts');

describe('operator: logtail logs -f follows a capture live', function () {
  this.timeout(180_000);
  const s = useOperatorSuite({ namespaces: ['follow'], operators: [{}] });

  it('prints the log while Streaming, then verifies it against the stored object', async () => {
    // ~8 s of output: the CLI starts while the capture is Streaming
    await apply(s.c, podManifest(s.ns, 'slow', { script: { containers: { main: { lines: 4000, lineBytes: 90, linesPerSecond: 500, exitCode: 0 } } } }));
    await apply(s.c, logTailManifest(s.ns, 'slow', { podName: 'slow' }));
    await waitForLogTail(s.c, s.ns, 'slow', 60_000, (lt) => lt.status?.phase === 'Streaming');

    const child = spawn(process.execPath, [CLI, 'logs', '-f', 'slow', '-n', s.ns], { env: { ...process.env, ...s.c.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    let phaseAtFirstByte: string | undefined;
    let firstSeen: Promise<void> | undefined;
    child.stdout.on('data', (b: Buffer) => {
      if (out.length === 0) firstSeen = getLogTail(s.c, s.ns, 'slow').then((lt) => void (phaseAtFirstByte = lt?.status?.phase));
      out.push(b);
    });
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    await firstSeen;

    expect(code, err).to.equal(0);
    expect(phaseAtFirstByte, 'the first bytes came while the capture was still running').to.equal('Streaming');
    const recorded = simOutputPath(s.c, s.ns, 'slow', 'main');
    await waitForFile(recorded);
    expect(Buffer.concat(out).equals(readFileSync(recorded)), 'printed bytes equal what the container wrote').to.equal(true);
    const lt = await getLogTail(s.c, s.ns, 'slow');
    expect(lt?.status?.phase).to.equal('Complete');
    const sha = lt!.status!.containers![0]!.object!.sha256;
    expect(err).to.include(`logtail: verified: the ${readFileSync(recorded).length} bytes printed for main restart 0 equal the stored object ${lt!.status!.containers![0]!.object!.uri} (sha256 ${sha})`);
  });

  for (const [node, late] of [[undefined, false], ['kubelet-1', false], ['kubelet-1', true]] as const) {
    const pod = `restarts${node ? '-hk' : ''}${late ? '-late' : ''}`;
    const when = late ? ', started only after run 0 ended (previous=true)' : '';
    it(`follows a restarting container run after run, and verifies each run against its own object (${node ? 'hollow kubelet: real kubelet code' : 'simulator'}${when})`, async () => {
      await apply(s.c, podManifest(s.ns, pod, { restartPolicy: 'OnFailure', ...(node ? { nodeName: node } : {}), script: { containers: { main: { lines: 1500, lineBytes: 70, linesPerSecond: 500, exitCodes: [2, 0], restartDelaySeconds: 1 } } } }));
      await apply(s.c, logTailManifest(s.ns, pod, { podName: pod }));
      await waitForLogTail(s.c, s.ns, pod, 60_000, (lt) => lt.status?.phase === 'Streaming');
      if (late) {
        const end = Date.now() + 60_000;
        for (;;) {
          const r = await s.c.kubectl(['get', 'pod', pod, '-n', s.ns, '-o', 'jsonpath={.status.containerStatuses[0].lastState.terminated.exitCode}']);
          if (r.stdout.trim() === '2') break;
          if (Date.now() > end) throw new Error('run 0 did not end');
          await sleep(200);
        }
      }
      const r = await runCmd(process.execPath, [CLI, 'logs', '-f', pod, '-n', s.ns], { env: { ...process.env, ...s.c.env }, timeoutMs: 120_000 });
      expect(r.code, r.stderr).to.equal(0);
      const lt = await getLogTail(s.c, s.ns, pod);
      expect(lt?.status?.phase).to.equal('Complete');
      const runs = (lt!.status!.containers ?? []).filter((x) => x.name === 'main').sort((a, b) => a.restart - b.restart);
      expect(runs.map((x) => x.restart)).to.deep.equal([0, 1]);
      const stored = Buffer.concat(runs.map((x) => readFileSync(uriToPath(x.object!.uri))));
      expect(Buffer.from(r.stdout).equals(stored), 'printed = run 0 then run 1, as stored').to.equal(true);
      for (const x of runs) expect(r.stderr).to.include(`printed for main restart ${x.restart} equal the stored object ${x.object!.uri} (sha256 ${x.object!.sha256})`);
    });
  }

  it('for a finished LogTail prints the verified stored object (with or without -f)', async () => {
    for (const args of [['logs', 'slow', '-n', s.ns], ['logs', '-f', 'slow', '-n', s.ns]]) {
      const r = await runCmd(process.execPath, [CLI, ...args], { env: { ...process.env, ...s.c.env } });
      expect(r.code, r.stderr).to.equal(0);
      expect(Buffer.from(r.stdout).equals(readFileSync(simOutputPath(s.c, s.ns, 'slow', 'main')))).to.equal(true);
      expect(r.stderr).to.match(/^verified sha256 [0-9a-f]{64}/);
    }
  });

  it('asks for -c when the pod has several containers', async () => {
    await apply(s.c, podManifest(s.ns, 'two', { containers: ['a', 'b'], script: { containers: { a: { lines: 3000, lineBytes: 50, linesPerSecond: 300, exitCode: 0 }, b: { lines: 10, lineBytes: 50, linesPerSecond: 100, exitCode: 0 } } } }));
    await apply(s.c, logTailManifest(s.ns, 'two', { podName: 'two' }));
    await waitForLogTail(s.c, s.ns, 'two', 60_000, (lt) => lt.status?.phase === 'Streaming');
    const r = await runCmd(process.execPath, [CLI, 'logs', '-f', 'two', '-n', s.ns], { env: { ...process.env, ...s.c.env } });
    expect(r.code).to.equal(1);
    expect(r.stderr).to.match(/captures several containers \(a, b\); choose one with -c/);
  });
});
