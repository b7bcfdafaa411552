// The CRD against a real kube-apiserver: it installs, its CEL compiles, and
// the apiserver's verdict on every corpus spec matches resolveSpec's.
import { expect } from 'chai';
import { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import { join } from 'node:path';
import { REPO_ROOT } from '../../../src/dev/cluster.ts';
import { sleep } from '../../../src/dev/proc.ts';
import { GROUP, KIND, PLURAL, VERSION, resolveSpec } from '../../../src/core/spec.ts';
import { MAX_UNCAPTURED_RUNS, conditionsForPhase, setCondition, type LogTailStatus } from '../../../src/core/status.ts';
import { SPEC_CORPUS } from '../../unit/core/crd-corpus.ts';
import { cluster, uniqueName, type TestCluster } from '../fixture.ts';

const CRD_FILE = join(REPO_ROOT, 'crds', 'logtail.dev_logtails.yaml');

function manifest(ns: string, name: string, spec: Record<string, unknown>) {
  return { apiVersion: `${GROUP}/${VERSION}`, kind: KIND, metadata: { name, namespace: ns }, spec };
}

function errorText(e: unknown): string {
  const err = e as { code?: number; body?: unknown; message?: string };
  return `${err.code ?? ''} ${typeof err.body === 'string' ? err.body : JSON.stringify(err.body ?? err.message)}`;
}

describe('e2e crd (crds/logtail.dev_logtails.yaml on kube-apiserver)', function () {
  this.timeout(300_000);
  let c: TestCluster;
  let api: CustomObjectsApi;
  let ns: string;

  before(async function () {
    this.timeout(600_000);
    c = await cluster();
    const applied = await c.kubectl(['apply', '--server-side', '-f', CRD_FILE]);
    expect(applied.code, applied.stderr).to.equal(0);
    // Right after apply the CRD may have no status.conditions yet, and
    // `kubectl wait` fails at once ("accessor error: <nil>") instead of waiting.
    let est = await c.kubectl(['wait', '--for=condition=Established', `crd/${PLURAL}.${GROUP}`, '--timeout=60s']);
    for (let i = 0; i < 10 && est.code !== 0 && est.stderr.includes('accessor error'); i++) {
      await sleep(300);
      est = await c.kubectl(['wait', '--for=condition=Established', `crd/${PLURAL}.${GROUP}`, '--timeout=60s']);
    }
    expect(est.code, est.stderr).to.equal(0);
    ns = uniqueName('crd');
    const created = await c.kubectl(['create', 'namespace', ns]);
    expect(created.code, created.stderr).to.equal(0);
    const kc = new KubeConfig();
    kc.loadFromFile(c.kubeconfigPath);
    api = kc.makeApiClient(CustomObjectsApi);
  });

  async function dryRunCreate(spec: Record<string, unknown>): Promise<string | undefined> {
    try {
      await api.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, body: manifest(ns, 'dry', spec), dryRun: 'All' });
      return undefined;
    } catch (e) {
      return errorText(e);
    }
  }

  it('agrees with resolveSpec on every corpus spec', async () => {
    const disagreements: string[] = [];
    for (const entry of SPEC_CORPUS) {
      const refusal = await dryRunCreate(entry.spec);
      const op = resolveSpec(entry.spec);
      const admitted = refusal === undefined;
      const expectedAdmitted = entry.operatorStricter ? true : op.ok;
      if (admitted !== expectedAdmitted || (entry.operatorStricter && op.ok)) {
        disagreements.push(`${JSON.stringify(entry.spec).slice(0, 200)}: apiserver ${refusal ?? 'admits'}; operator ${op.ok ? 'accepts' : op.message}`);
      }
    }
    expect(disagreements).to.deep.equal([]);
  });

  it('explains a refusal in the CRD\'s words', async () => {
    expect(await dryRunCreate({ podName: 'p', retry: { initialInterval: '20s' } })).to.match(/initialInterval must not exceed maxInterval/);
    expect(await dryRunCreate({ podName: 'p', keyTemplate: '{pod}.log' })).to.match(/must contain both \{container\} and \{restart\}/);
    expect(await dryRunCreate({ podName: 'p', podNotFoundTimeout: '0s' })).to.match(/must be greater than zero/);
  });

  // Bad input at apply: `kubectl apply` (what a user runs) refuses it with a
  // message naming the field, and resolveSpec refuses the same spec with its own.
  const refusedAtApply: { name: string; spec: Record<string, unknown>; apiserver: RegExp[]; operator: RegExp }[] = [
    { name: 'missing podName', spec: { compression: 'gzip' }, apiserver: [/spec\.podName: Required value/], operator: /^spec\.podName: required/ },
    {
      name: 'retry interval over 1h',
      spec: { podName: 'p', retry: { maxInterval: '1000h' } },
      apiserver: [/spec\.retry\.maxInterval: Invalid value: "1000h": must be at most 1h/],
      operator: /^spec\.retry\.maxInterval: must be at most 1h \(got 1000h\)/,
    },
    {
      name: 'retry budget over 24h',
      spec: { podName: 'p', retry: { maxElapsed: '24h0.5s' } },
      apiserver: [/spec\.retry\.maxElapsed: Invalid value: "24h0\.5s": must be at most 24h/],
      operator: /^spec\.retry\.maxElapsed: must be at most 24h/,
    },
    {
      name: 'terminatedRetry interval over 1h',
      spec: { podName: 'p', terminatedRetry: { initialInterval: '90m', maxInterval: '2h' } },
      apiserver: [/spec\.terminatedRetry\.initialInterval: Invalid value: "90m": must be at most 1h/, /spec\.terminatedRetry\.maxInterval: Invalid value: "2h": must be at most 1h/],
      operator: /^spec\.terminatedRetry\.initialInterval: must be at most 1h/,
    },
    {
      name: 'podNotFoundTimeout of a year',
      spec: { podName: 'p', podNotFoundTimeout: '8760h' },
      apiserver: [/spec\.podNotFoundTimeout: Invalid value: "8760h": must be at most 24h/],
      operator: /^spec\.podNotFoundTimeout: must be at most 24h/,
    },
    {
      name: 'ttlSecondsAfterFinished over 30 days',
      spec: { podName: 'p', ttlSecondsAfterFinished: 2_592_001 },
      apiserver: [/spec\.ttlSecondsAfterFinished: Invalid value: 2592001: .*less than or equal to 2592000/],
      operator: /^spec\.ttlSecondsAfterFinished: must be an integer between 0 and 2592000/,
    },
    {
      name: 'unknown compression',
      spec: { podName: 'p', compression: 'zstd' },
      apiserver: [/spec\.compression: Unsupported value: "zstd": supported values: "none", "gzip"/],
      operator: /^spec\.compression: must be one of none, gzip/,
    },
    {
      name: 'keyTemplate climbing out of its prefix',
      spec: { podName: 'p', keyTemplate: '../../other-namespace/{container}-{restart}' },
      apiserver: [/spec\.keyTemplate: Invalid value: "\.\.\/\.\.\/other-namespace\/\{container\}-\{restart\}": keyTemplate must not contain "\." or "\.\." path segments/],
      operator: /^spec\.keyTemplate: key template has a "\.\." path segment/,
    },
    {
      name: 'keyTemplate absolute',
      spec: { podName: 'p', keyTemplate: '/etc/{container}-{restart}' },
      apiserver: [/spec\.keyTemplate: Invalid value: "\/etc\/\{container\}-\{restart\}": keyTemplate must not start or end with "\/" nor contain "\/\/"/],
      operator: /^spec\.keyTemplate: key template must not start with "\/"/,
    },
  ];
  for (const t of refusedAtApply) {
    it(`refuses at apply, with its message: ${t.name}`, async () => {
      const name = uniqueName('bad');
      const r = await c.kubectl(['apply', '-f', '-'], { input: JSON.stringify(manifest(ns, name, t.spec)) });
      expect(r.code, r.stdout).to.not.equal(0);
      expect(r.stderr).to.include(`The LogTail "${name}" is invalid`);
      for (const re of t.apiserver) expect(r.stderr, r.stderr).to.match(re);
      const got = await c.kubectl(['-n', ns, 'get', `${PLURAL}.${GROUP}`, name]);
      expect(got.code, 'nothing was created').to.not.equal(0);
      const op = resolveSpec(t.spec);
      expect(op.ok).to.equal(false);
      expect(!op.ok && op.message).to.match(t.operator);
    });
  }

  it('keeps the spec immutable', async () => {
    const name = 'immutable';
    await api.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, body: manifest(ns, name, { podName: 'p1' }) });
    const podChange = await c.kubectl(['-n', ns, 'patch', `${PLURAL}.${GROUP}`, name, '--type=merge', '-p', '{"spec":{"podName":"p2"}}']);
    expect(podChange.code).to.not.equal(0);
    expect(podChange.stderr).to.match(/podName is immutable/);
    const other = await c.kubectl(['-n', ns, 'patch', `${PLURAL}.${GROUP}`, name, '--type=merge', '-p', '{"spec":{"compression":"gzip"}}']);
    expect(other.code).to.not.equal(0);
    expect(other.stderr).to.match(/spec is immutable/);
  });

  it('stores a full status through the status subresource and prints its columns', async () => {
    const name = 'with-status';
    await api.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, body: manifest(ns, name, { podName: 'job-1' }) });
    const now = new Date('2026-11-27T10:00:00Z');
    const status: LogTailStatus = {
      phase: 'Complete',
      result: 'Succeeded',
      reason: 'Captured',
      message: 'stored 1 object(s)',
      podUID: '0b7e6f8a-1c2d-4e5f-8a9b-0c1d2e3f4a5b',
      retries: 2,
      bytes: 5_000_000_000,
      startTime: '2026-11-27T09:00:00Z',
      completionTime: '2026-11-27T10:00:00Z',
      observedGeneration: 1,
      exitCode: 0,
      containers: [
        {
          name: 'main',
          init: false,
          restart: 0,
          state: 'Stored',
          exitCode: 0,
          reason: 'Completed',
          startedAt: '2026-11-27T09:00:01Z',
          finishedAt: '2026-11-27T09:59:59Z',
          bytes: 5_000_000_000,
          lines: 12,
          object: { uri: 's3://logtail/ns/x/main-0.log', size: 5_000_000_000, sha256: 'a'.repeat(64), objectSha256: 'a'.repeat(64) },
          streamRetries: 2,
          lastError: 'connection reset',
          checkpoint: { time: '2026-11-27T06:29:59.123456789-03:30', ordinal: 3, offset: 17 },
          firstTimestamp: '2026-11-27T05:30:01.000000001-03:30',
          malformedLines: 0,
          truncatedBytes: 4_000_000_000,
        },
      ],
      uncapturedRuns: [{ container: 'main', init: false, fromRestart: 0, toRestart: 41, reason: 'LogGap' }],
      uncapturedRunsDropped: 7,
      storedRunsDropped: 3,
      conditions: setCondition(conditionsForPhase('Complete', 'Captured', 'done', 1, [], now), { type: 'Truncated', status: 'True', reason: 'Truncated', message: 'cut' }, now),
    };
    const patched = await c.kubectl(['-n', ns, 'patch', `${PLURAL}.${GROUP}`, name, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { ...status, bogus: 1 } })]);
    expect(patched.code, patched.stderr).to.equal(0);
    const got = (await api.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name })) as { status: unknown };
    expect(got.status).to.deep.equal(status); // every field kept, the unknown one pruned
    const table = await c.kubectl(['-n', ns, 'get', 'lt', name]);
    expect(table.code, table.stderr).to.equal(0);
    expect(table.stdout.split('\n')[0]?.split(/\s+/).filter(Boolean)).to.deep.equal(['NAME', 'POD', 'PHASE', 'RESULT', 'BYTES', 'RETRIES', 'REASON', 'AGE']);
    expect(table.stdout).to.match(/with-status\s+job-1\s+Complete\s+Succeeded\s+5000000000\s+2\s+Captured\s+/);
  });

  it('refuses a status with more uncaptured-run ranges than the operator ever writes', async () => {
    const name = 'too-many-ranges';
    await api.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, body: manifest(ns, name, { podName: 'job-2' }) });
    const ranges = Array.from({ length: MAX_UNCAPTURED_RUNS + 1 }, (_, i) => ({ container: 'c', fromRestart: 2 * i, toRestart: 2 * i, reason: 'LogGap' }));
    const patch = JSON.stringify({ status: { phase: 'Streaming', result: 'Unknown', retries: 0, bytes: 0, containers: [], conditions: [], uncapturedRuns: ranges } });
    const r = await c.kubectl(['-n', ns, 'patch', `${PLURAL}.${GROUP}`, name, '--subresource=status', '--type=merge', '-p', patch]);
    expect(r.code).to.not.equal(0);
    expect(r.stderr).to.match(new RegExp(`status\\.uncapturedRuns: Too many: ${MAX_UNCAPTURED_RUNS + 1}: must have at most ${MAX_UNCAPTURED_RUNS} items`));
  });

  it('reads well in kubectl explain', async () => {
    let out = '';
    for (let i = 0; i < 30; i++) {
      const r = await c.kubectl(['explain', 'logtail.spec.keyTemplate']);
      out = r.stdout;
      if (r.code === 0 && out.includes('Placeholders')) break;
      await sleep(1000); // the OpenAPI document is published shortly after Established
    }
    expect(out).to.match(/Placeholders: \{namespace\}/);
    const retry = await c.kubectl(['explain', 'logtail.spec.retry.initialInterval']);
    expect(retry.stdout).to.match(/Default: 500ms/);
  });
});
