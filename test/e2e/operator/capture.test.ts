// The operator end to end: real apiserver, node simulator as the kubelet,
// real filesystem store. Every capture is checked byte for byte against what
// the simulated container wrote.
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { nodeVersionOk } from '../../../src/cmd/node-version.ts';
import { REPO_ROOT } from '../../../src/dev/cluster.ts';
import { run as runCmd } from '../../../src/dev/proc.ts';
import type { TestCluster } from '../fixture.ts';
import {
  apply,
  events,
  logTailManifest,
  podManifest,
  sha256File,
  simOutputPath,
  uriToPath,
  useOperatorSuite,
  waitForFile,
  waitForFinalizerRemoved,
  waitForLogTail,
  type LogTailObject,
  type PodOptions,
} from './harness.ts';

async function expectByteExact(c: TestCluster, ns: string, pod: string, lt: LogTailObject, container: string): Promise<void> {
  const cap = lt.status?.containers?.find((x) => x.name === container);
  expect(cap, `no capture for ${container}: ${JSON.stringify(lt.status)}`).to.not.equal(undefined);
  expect(cap!.object, `no object for ${container}: ${JSON.stringify(cap)}`).to.not.equal(undefined);
  const recorded = simOutputPath(c, ns, pod, container);
  await waitForFile(recorded);
  const want = await sha256File(recorded);
  const got = await sha256File(uriToPath(cap!.object!.uri));
  expect(got, `${container}: stored object differs from what the container wrote`).to.equal(want);
  expect(cap!.object!.sha256).to.equal(want);
  expect(cap!.object!.objectSha256).to.equal(want);
  expect(cap!.object!.size).to.equal(readFileSync(recorded).length);
}

describe('operator: capture end to end (filesystem store)', function () {
  this.timeout(180_000);
  const s = useOperatorSuite({ namespaces: ['cap'], operators: [{}], logLines: 60 });

  async function run(name: string, pod: PodOptions, spec: Record<string, unknown> = {}, timeoutMs = 90_000): Promise<LogTailObject> {
    await apply(s.c, podManifest(s.ns, name, pod));
    await apply(s.c, logTailManifest(s.ns, name, { podName: name, ...spec }));
    return waitForLogTail(s.c, s.ns, name, timeoutMs);
  }

  it('captures a single container byte-exactly and records its exit code', async () => {
    const lt = await run('single', { script: { containers: { main: { lines: 20000, lineBytes: 100, linesPerSecond: 20000, exitCode: 0 } } } });
    expect(lt.status?.phase, lt.status?.message).to.equal('Complete');
    expect(lt.status?.result).to.equal('Succeeded');
    expect(lt.status?.containers?.[0]?.exitCode).to.equal(0);
    expect(lt.status?.containers?.[0]?.reason).to.equal('Completed');
    expect(lt.status?.bytes).to.equal(2_000_000);
    await expectByteExact(s.c, s.ns, 'single', lt, 'main');
    const conds = Object.fromEntries((lt.status?.conditions ?? []).map((x) => [x.type, x.status]));
    expect(conds).to.include({ Complete: 'True', Finished: 'True', Streaming: 'False' });
    // Removed by a patch after the terminal status: waited for, bounded.
    const after = await waitForFinalizerRemoved(s.c, s.ns, 'single');
    expect(after.metadata.finalizers ?? []).to.not.include('logtail.dev/finalizer');
    const evs = await events(s.c, s.ns, 'single');
    expect(evs.filter((e) => ['Complete', 'Incomplete', 'Failed'].includes(e.reason)).map((e) => e.reason)).to.deep.equal(['Complete']);
  });

  it('captures init + two containers, each into its own object, and reports the failing exit code', async () => {
    const lt = await run('multi', {
      initContainers: ['setup'],
      containers: ['build', 'sidecar'],
      script: {
        containers: {
          setup: { lines: 50, lineBytes: 60, linesPerSecond: 500, exitCode: 0 },
          build: { lines: 3000, lineBytes: 120, linesPerSecond: 3000, exitCode: 2 },
          sidecar: { lines: 500, lineBytes: 80, linesPerSecond: 1000, exitCode: 0 },
        },
      },
    });
    expect(lt.status?.phase, lt.status?.message).to.equal('Complete');
    expect(lt.status?.result).to.equal('Failed');
    expect(lt.status?.exitCode).to.equal(2);
    expect(lt.status?.containers?.map((x) => x.name).sort()).to.deep.equal(['build', 'setup', 'sidecar']);
    expect(lt.status?.containers?.find((x) => x.name === 'build')?.exitCode).to.equal(2);
    for (const name of ['setup', 'build', 'sidecar']) await expectByteExact(s.c, s.ns, 'multi', lt, name);
    const uris = new Set(lt.status!.containers!.map((x) => x.object!.uri));
    expect(uris.size).to.equal(3);
  });

  it('resumes exactly inside lines over 16 KiB when the connection is cut within them', async () => {
    const long = 'L'.repeat(40_000) + '\n';
    const lt = await run('longlines', {
      script: { containers: { main: { text: long + 'short line\n' + 'short line\n', repeat: 12, linesPerSecond: 4, exitCode: 0 } } },
      faults: { cutEveryBytes: 150_000 },
    });
    expect(lt.status?.phase, lt.status?.message).to.equal('Complete');
    expect(lt.status?.retries).to.be.greaterThan(0);
    await expectByteExact(s.c, s.ns, 'longlines', lt, 'main');
  });

  it('seed #1: absorbs a new node answering "tls: internal error" for its first 15 s', async () => {
    const lt = await run('tlsnode', {
      script: { containers: { main: { lines: 400, lineBytes: 100, linesPerSecond: 40, exitCode: 0 } } },
      faults: { tlsAlertSeconds: 15 },
    });
    expect(lt.status?.phase, lt.status?.message).to.equal('Complete');
    expect(lt.status?.result).to.equal('Succeeded');
    expect(lt.status?.retries).to.be.greaterThan(0);
    expect(lt.status?.containers?.[0]?.lastError ?? '').to.match(/tls|internal error|KubeletUnreachable|ServerError/i);
    await expectByteExact(s.c, s.ns, 'tlsnode', lt, 'main');
  });

  it('seed #2: waits for state.terminated when the phase turns Succeeded first', async () => {
    const lt = await run('lateterm', {
      script: { containers: { main: { lines: 100, lineBytes: 50, linesPerSecond: 1000, exitCode: 3 } } },
      faults: { terminatedDelaySeconds: 5 },
    });
    expect(lt.status?.phase, lt.status?.message).to.equal('Complete');
    expect(lt.status?.containers?.[0]?.exitCode).to.equal(3);
    expect(lt.status?.result).to.equal('Failed');
    await expectByteExact(s.c, s.ns, 'lateterm', lt, 'main');
  });

  it('resumes a stream cut five or more times mid-run without loss or duplicates (same-second bursts of identical lines)', async () => {
    const lt = await run('cuts', {
      script: { containers: { main: { text: 'same line, same second\n', repeat: 4000, burst: 50, linesPerSecond: 400, exitCode: 0 } } },
      faults: { cutEveryBytes: 40_000 },
    });
    expect(lt.status?.phase, lt.status?.message).to.equal('Complete');
    expect(lt.status?.retries).to.be.at.least(5);
    await expectByteExact(s.c, s.ns, 'cuts', lt, 'main');
  });

  it('treats a clean end of stream while the container runs as a break, not the end of the log', async () => {
    const lt = await run('cleanend', {
      // one second of output (~13 KB with timestamps) stays well below the
      // cut, so every resumed connection gets past the replayed second
      script: { containers: { main: { lines: 800, lineBytes: 100, linesPerSecond: 100, exitCode: 0 } } },
      faults: { endStreamAfterBytes: 40_000 },
    });
    expect(lt.status?.phase, lt.status?.message).to.equal('Complete');
    expect(lt.status?.retries).to.be.greaterThan(0);
    await expectByteExact(s.c, s.ns, 'cleanend', lt, 'main');
  });

  it('reports a pod deleted mid-run as PodDeleted, never as success', async () => {
    const lt = await run('deleted', {
      script: { containers: { main: { lines: 3000, lineBytes: 100, linesPerSecond: 100, exitCode: 0 } } },
      faults: { deleteAfterSeconds: 3 },
    });
    expect(lt.status?.result).to.not.equal('Succeeded');
    expect(lt.status?.result).to.equal('Unknown');
    expect(lt.status?.reason).to.equal('PodDeleted');
    expect(['Incomplete', 'Failed']).to.include(lt.status?.phase);
  });

  it('stores gzip with timestamps kept; sha256 covers the uncompressed content', async () => {
    const lt = await run('gz', { script: { containers: { main: { lines: 1000, lineBytes: 80, linesPerSecond: 5000, exitCode: 0 } } } }, { compression: 'gzip', timestamps: true });
    expect(lt.status?.phase, lt.status?.message).to.equal('Complete');
    const cap = lt.status!.containers![0]!;
    expect(cap.object!.uri).to.match(/\.gz$/);
    const raw = readFileSync(uriToPath(cap.object!.uri));
    expect(createHash('sha256').update(raw).digest('hex')).to.equal(cap.object!.objectSha256);
    const text = gunzipSync(raw);
    expect(createHash('sha256').update(text).digest('hex')).to.equal(cap.object!.sha256);
    // bytes: the content as stored, before compression, prefixes included (docs/status.md, Bytes)
    expect(cap.bytes).to.equal(text.length);
    expect(lt.status?.bytes).to.equal(text.length);
    const lines = text.toString().split('\n').filter(Boolean);
    expect(lines).to.have.length(1000);
    for (const l of lines.slice(0, 5)) expect(l).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z /);
    // stripped of their timestamps, the lines are exactly what the container wrote
    const stripped = lines.map((l) => l.slice(31) + '\n').join('');
    expect(stripped).to.equal(readFileSync(simOutputPath(s.c, s.ns, 'gz', 'main'), 'utf8'));
  });

  it('exposes metrics, health and readiness over HTTP', async () => {
    const base = `http://127.0.0.1:${s.op.httpPort}`;
    expect((await fetch(`${base}/healthz`)).status).to.equal(200);
    expect((await fetch(`${base}/readyz`)).status).to.equal(200);
    const text = await (await fetch(`${base}/metrics`)).text();
    const value = (re: RegExp) => Number(text.match(re)?.[1] ?? NaN);
    expect(value(new RegExp(`^logtail_bytes_captured_total\\{namespace="${s.ns}"\\} (\\d+)`, 'm'))).to.be.greaterThan(2_000_000);
    expect(value(/^logtail_captures_finished_total\{phase="Complete",result="Succeeded"\} (\d+)/m)).to.be.at.least(1);
    expect(value(/^logtail_stream_retries_total\{reason="KubeletUnreachable"\} (\d+)/m)).to.be.at.least(1);
    expect(value(/^logtail_exit_to_complete_seconds_count (\d+)/m)).to.be.at.least(1);
    expect(text).to.match(/^logtail_active_streams \d+/m);
    expect(text).to.match(/^# TYPE logtail_informer_restarts_total counter/m);
  });

  describe('the logtail CLI', () => {
    const cli = (args: string[]) => runCmd(process.execPath, [join(REPO_ROOT, 'src', 'cmd', 'logtail.ts'), ...args], { env: { ...process.env, ...s.c.env } });

    it('get writes the captured log and verifies its sha256', async () => {
      const r = await cli(['get', 'single', '-n', s.ns]);
      expect(r.code, r.stderr).to.equal(0);
      expect(createHash('sha256').update(r.stdout).digest('hex')).to.equal(await sha256File(simOutputPath(s.c, s.ns, 'single', 'main')));
      expect(r.stderr).to.match(/^verified sha256 [0-9a-f]{64}/);
    });

    it('get -c picks one of several containers, and asks for -c when it is missing', async () => {
      const r = await cli(['get', 'multi', '-n', s.ns, '-c', 'build']);
      expect(r.code, r.stderr).to.equal(0);
      expect(Buffer.from(r.stdout).equals(readFileSync(simOutputPath(s.c, s.ns, 'multi', 'build')))).to.equal(true);
      const ask = await cli(['get', 'multi', '-n', s.ns]);
      expect(ask.code).to.equal(1);
      expect(ask.stderr).to.match(/captured 3 containers .*choose one with -c/);
    });

    it('says clearly when the LogTail is missing or not Complete', async () => {
      const missing = await cli(['get', 'no-such-logtail', '-n', s.ns]);
      expect(missing.code).to.equal(1);
      expect(missing.stderr).to.equal(`error: LogTail "no-such-logtail" not found in namespace "${s.ns}"\n`);
      await apply(s.c, logTailManifest(s.ns, 'notyet', { podName: 'notyet-pod', podNotFoundTimeout: '1m' }));
      await waitForLogTail(s.c, s.ns, 'notyet', 30_000, (lt) => lt.status?.phase === 'Pending');
      const pending = await cli(['get', 'notyet', '-n', s.ns]);
      expect(pending.code).to.equal(1);
      expect(pending.stderr).to.match(/is not Complete: phase Pending \(reason WaitingForPod/);
    });

    it('describe shows status, containers, conditions and events', async () => {
      const r = await cli(['describe', 'multi', '-n', s.ns]);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.match(/Phase: +Complete \(Captured\)/);
      expect(r.stdout).to.match(/Result: +Failed, exit code 2/);
      expect(r.stdout).to.match(/build restart 0: Stored, exit 2 \(Error\)/);
      expect(r.stdout).to.match(/object: file:\/\/\//);
      expect(r.stdout).to.match(/Finished +True/);
      expect(r.stdout).to.match(/Normal +Complete/);
    });

    it('get refuses an object whose bytes no longer match the recorded checksum', async () => {
      const lt = await waitForLogTail(s.c, s.ns, 'single', 5_000);
      const path = uriToPath(lt.status!.containers![0]!.object!.uri);
      const bytes = readFileSync(path);
      bytes[10] = bytes[10]! ^ 1;
      writeFileSync(path, bytes);
      const r = await cli(['get', 'single', '-n', s.ns]);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.match(/checksum mismatch/);
      // verified before output: not one byte of the tampered object reaches stdout
      expect(r.stdout).to.equal('');
      const dest = join(REPO_ROOT, '.test-results', `tampered-${s.ns}.log`);
      const o = await cli(['get', 'single', '-n', s.ns, '-o', dest]);
      expect(o.code).to.equal(1);
      expect(existsSync(dest), 'no -o file for a tampered object').to.equal(false);
    });

    it('tells a kubectl plugin user on an old Node what it needs', async function () {
      const old = '/usr/bin/node';
      const v = await runCmd(old, ['--version']).catch(() => undefined);
      if (!v || v.code !== 0 || nodeVersionOk(v.stdout.trim().slice(1))) this.skip(); // needs an older system Node to exist
      const out = join(REPO_ROOT, '.test-results', 'dist-cli');
      const build = await runCmd(process.execPath, [join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(REPO_ROOT, 'tsconfig.json'), '--outDir', out]);
      expect(build.code, build.stdout).to.equal(0);
      const r = await runCmd(old, [join(out, 'src', 'cmd', 'logtail.js'), 'get', 'x']);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.match(/kubectl-logtail needs Node\.js >= 22\.19 .*this is Node 20\./);
    });
  });

  it('fails with PodNotFound when the pod never appears', async () => {
    await apply(s.c, logTailManifest(s.ns, 'nopod', { podName: 'does-not-exist', podNotFoundTimeout: '3s' }));
    const lt = await waitForLogTail(s.c, s.ns, 'nopod', 30_000);
    expect(lt.status?.phase).to.equal('Failed');
    expect(lt.status?.reason).to.equal('PodNotFound');
    expect(lt.status?.result).to.equal('Unknown');
  });

  it('answers kubectl wait on the Complete and Finished conditions', async () => {
    const ok = await s.c.kubectl(['wait', '--for=condition=Complete', 'lt/single', '-n', s.ns, '--timeout=10s']);
    expect(ok.code, ok.stderr).to.equal(0);
    // a failed capture is Finished but never Complete, so waiting on Finished cannot hang
    const finished = await s.c.kubectl(['wait', '--for=condition=Finished', 'lt/nopod', '-n', s.ns, '--timeout=10s']);
    expect(finished.code, finished.stderr).to.equal(0);
    const notComplete = await s.c.kubectl(['wait', '--for=condition=Complete', 'lt/nopod', '-n', s.ns, '--timeout=2s']);
    expect(notComplete.code).to.not.equal(0);
  });
});
