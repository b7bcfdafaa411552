import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, FLAGS, loadConfig } from '../../../src/cmd/config.ts';
import { REPO_ROOT } from '../../../src/dev/cluster.ts';
import { nodeVersionOk } from '../../../src/cmd/node-version.ts';

describe('operator configuration', () => {
  it('has the documented defaults', () => {
    const c = loadConfig([], {});
    expect(c.store).to.equal('file://./logtail-data');
    expect(c.maxConcurrentStreams).to.equal(64);
    expect(c.watchNamespaces).to.deep.equal([]);
    expect(c.idleTimeoutMs).to.equal(60_000);
    expect(c.statusIntervalMs).to.equal(2000);
    expect(c.s3ForcePathStyle).to.equal(false);
    expect(c.httpAddr).to.equal(':8080');
  });

  it('reads every setting from the environment, and flags win over it', () => {
    const env = { LOGTAIL_STORE: 's3://b/p', LOGTAIL_S3_ENDPOINT: 'http://127.0.0.1:9000', LOGTAIL_WATCH_NAMESPACES: 'a, b', LOGTAIL_MAX_CONCURRENT_STREAMS: '3', LOGTAIL_LEADER_ELECT: 'true', LOGTAIL_IDLE_TIMEOUT: '5s' };
    const c = loadConfig(['--max-concurrent-streams', '7', '--idle-timeout=1m'], env);
    expect(c.store).to.equal('s3://b/p');
    expect(c.s3ForcePathStyle).to.equal(true);
    expect(c.watchNamespaces).to.deep.equal(['a', 'b']);
    expect(c.maxConcurrentStreams).to.equal(7);
    expect(c.leaderElect).to.equal(true);
    expect(c.idleTimeoutMs).to.equal(60_000);
  });

  it('--min-stream-hold: 10s by default, any duration, 0s allowed (preempt at once)', () => {
    expect(loadConfig([], {}).minStreamHoldMs).to.equal(10_000);
    expect(loadConfig(['--min-stream-hold', '0s'], {}).minStreamHoldMs).to.equal(0);
    expect(loadConfig([], { LOGTAIL_MIN_STREAM_HOLD: '1m30s' }).minStreamHoldMs).to.equal(90_000);
    expect(() => loadConfig(['--min-stream-hold', '10'], {})).to.throw(ConfigError, /--min-stream-hold/);
  });

  it('has --require-admission-policy off by default (on in the chart), with its names and recheck interval', () => {
    const c = loadConfig([], {});
    expect(c.requireAdmissionPolicy).to.equal(false);
    expect(c.admissionPolicyName).to.equal('logtail-operator-pod-log-access');
    expect(c.admissionPolicyBindingName).to.equal('logtail-operator-pod-log-access');
    expect(c.admissionPolicyRecheckMs).to.equal(30_000);
    const e = loadConfig([], { LOGTAIL_REQUIRE_ADMISSION_POLICY: 'true', LOGTAIL_ADMISSION_POLICY_NAME: 'p' });
    expect([e.requireAdmissionPolicy, e.admissionPolicyName, e.admissionPolicyBindingName]).to.deep.equal([true, 'p', 'p']);
    expect(loadConfig(['--require-admission-policy', '--admission-policy-binding-name', 'b'], {}).admissionPolicyBindingName).to.equal('b');
  });

  it('documents every flag with its environment variable in a README row', () => {
    const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
    for (const def of Object.values(FLAGS)) {
      expect(readme, `README.md has no row for ${def.flag}`).to.include(`| \`${def.flag}\` | \`${def.env}\` |`);
    }
  });

  it('takes a bare boolean flag', () => {
    expect(loadConfig(['--leader-elect'], {}).leaderElect).to.equal(true);
    expect(loadConfig(['--leader-elect', '--store', 'file:///x'], {}).store).to.equal('file:///x');
    expect(loadConfig(['--leader-elect=false'], {}).leaderElect).to.equal(false);
  });

  it('--shard: off by default; the replica id from the flag, else $POD_NAME, else hostname-pid; lease duration at least 3s', () => {
    const off = loadConfig([], {});
    expect(off.shard).to.equal(false);
    expect(off.shardLeaseDurationMs).to.equal(15_000);
    const on = loadConfig(['--shard', '--shard-id', 'op-1', '--shard-lease-duration', '6s'], {});
    expect(on).to.include({ shard: true, shardId: 'op-1', shardLeaseDurationMs: 6000, leaderElect: false });
    expect(loadConfig([], { LOGTAIL_SHARD: 'true', POD_NAME: 'logtail-7d9f-x2k4p' })).to.include({ shard: true, shardId: 'logtail-7d9f-x2k4p' });
    expect(loadConfig(['--shard'], {}).shardId).to.match(/^.+-\d+$/);
    expect(() => loadConfig(['--shard-lease-duration', '2s'], {})).to.throw(ConfigError, /--shard-lease-duration/);
  });

  it('refuses --shard together with --leader-elect (sharding replaces it)', () => {
    expect(() => loadConfig(['--shard', '--leader-elect'], {})).to.throw(ConfigError, /--shard and --leader-elect/);
    expect(() => loadConfig([], { LOGTAIL_SHARD: 'true', LOGTAIL_LEADER_ELECT: 'true' })).to.throw(ConfigError, /--shard/);
    expect(loadConfig(['--shard', '--leader-elect=false'], {})).to.include({ shard: true, leaderElect: false });
  });

  it('refuses unknown flags and bad values with the flag name in the message', () => {
    expect(() => loadConfig(['--nope'], {})).to.throw(ConfigError, /unknown flag --nope/);
    expect(() => loadConfig(['--max-concurrent-streams', '0'], {})).to.throw(ConfigError, /--max-concurrent-streams/);
    expect(() => loadConfig(['--idle-timeout', 'soon'], {})).to.throw(ConfigError, /--idle-timeout/);
    expect(() => loadConfig(['--leader-elect=maybe'], {})).to.throw(ConfigError, /--leader-elect/);
  });

  it('checks the Node version a kubectl plugin runs on', () => {
    expect(nodeVersionOk('20.20.2')).to.equal(false);
    expect(nodeVersionOk('22.18.0')).to.equal(false);
    expect(nodeVersionOk('22.19.0')).to.equal(true);
    expect(nodeVersionOk('24.21.0')).to.equal(true);
  });
});
