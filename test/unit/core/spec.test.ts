import { expect } from 'chai';
import { DEFAULT_KEY_TEMPLATE } from '../../../src/core/key-template.ts';
import { API_VERSION, DURATION_CAPS, LOGTAIL_RESOURCE, MAX_TTL_SECONDS, logTailPath, logTailsPath, resolveSpec, selectContainers, type ResolvedSpec } from '../../../src/core/spec.ts';
import { resourcePath } from '../../../src/runtime/supervised-informer.ts';

function ok(spec: unknown): ResolvedSpec {
  const r = resolveSpec(spec);
  if (!r.ok) throw new Error(`expected a valid spec, got: ${r.message}`);
  return r.spec;
}

function fails(spec: unknown): string {
  const r = resolveSpec(spec);
  if (r.ok) throw new Error(`expected ${JSON.stringify(spec)} to be refused`);
  return r.message;
}

describe('core/spec', () => {
  it('applies every default', () => {
    expect(ok({ podName: 'web-0' })).to.deep.equal({
      podName: 'web-0',
      containers: undefined,
      keyTemplate: DEFAULT_KEY_TEMPLATE,
      compression: 'none',
      timestamps: false,
      retry: { initialIntervalMs: 500, maxIntervalMs: 10_000, maxElapsedMs: 300_000 },
      terminatedRetry: { initialIntervalMs: 200, maxIntervalMs: 5_000, maxElapsedMs: 15_000 },
      podNotFoundTimeoutMs: 120_000,
      ttlSecondsAfterFinished: undefined,
      retention: 'Retain',
      maxBytes: undefined,
      holdPod: false,
      holdTimeoutMs: 600_000,
    } satisfies ResolvedSpec);
  });

  it('maxBytes: an integer from 1024 to 1 TiB', () => {
    expect(ok({ podName: 'p', maxBytes: 1024 }).maxBytes).to.equal(1024);
    expect(ok({ podName: 'p', maxBytes: 2 ** 40 }).maxBytes).to.equal(2 ** 40);
    for (const bad of [1023, 0, -1, 1.5, '1Mi', 2 ** 40 + 1]) {
      expect(fails({ podName: 'p', maxBytes: bad })).to.equal('spec.maxBytes: must be an integer between 1024 and 1099511627776 (1 TiB) bytes');
    }
  });

  it('holdPod (default false) and holdTimeout (default 10m, at most 1h)', () => {
    expect(ok({ podName: 'p', holdPod: true }).holdPod).to.equal(true);
    expect(ok({ podName: 'p', holdPod: true, holdTimeout: '90s' }).holdTimeoutMs).to.equal(90_000);
    expect(ok({ podName: 'p', holdTimeout: '1h' }).holdTimeoutMs).to.equal(3_600_000);
    expect(fails({ podName: 'p', holdTimeout: '1h0.001s' })).to.equal('spec.holdTimeout: must be at most 1h (got 1h0.001s)');
    expect(fails({ podName: 'p', holdTimeout: '0s' })).to.equal('spec.holdTimeout: must be greater than zero');
    expect(fails({ podName: 'p', holdPod: 'true' })).to.equal('spec.holdPod: must be true or false');
  });

  it('retention: Retain (default) or Delete, nothing else', () => {
    expect(ok({ podName: 'p', retention: 'Delete' }).retention).to.equal('Delete');
    expect(ok({ podName: 'p', retention: 'Retain' }).retention).to.equal('Retain');
    expect(fails({ podName: 'p', retention: 'delete' })).to.equal('spec.retention: must be one of Retain, Delete');
  });

  it('takes every field as given', () => {
    const s = ok({
      podName: 'job-abc.x',
      containers: ['init-db', 'main'],
      keyTemplate: '{date}/{container}/{restart}.log',
      compression: 'gzip',
      timestamps: true,
      retry: { initialInterval: '1s', maxInterval: '1m', maxElapsed: '1h' },
      terminatedRetry: { maxElapsed: '1m30s' },
      podNotFoundTimeout: '1.5s',
      ttlSecondsAfterFinished: 0,
    });
    expect(s.containers).to.deep.equal(['init-db', 'main']);
    expect(s.keyTemplate).to.equal('{date}/{container}/{restart}.log');
    expect(s.compression).to.equal('gzip');
    expect(s.timestamps).to.equal(true);
    expect(s.retry).to.deep.equal({ initialIntervalMs: 1000, maxIntervalMs: 60_000, maxElapsedMs: 3_600_000 });
    expect(s.terminatedRetry).to.deep.equal({ initialIntervalMs: 200, maxIntervalMs: 5_000, maxElapsedMs: 90_000 });
    expect(s.podNotFoundTimeoutMs).to.equal(1500);
    expect(s.ttlSecondsAfterFinished).to.equal(0);
  });

  it('treats null as unset (the apiserver prunes nulls anyway)', () => {
    expect(ok({ podName: 'p', containers: null, keyTemplate: null, retry: null, ttlSecondsAfterFinished: null }).keyTemplate).to.equal(DEFAULT_KEY_TEMPLATE);
  });

  it('refuses invalid specs, naming the field', () => {
    const cases: [unknown, RegExp][] = [
      [undefined, /^spec: must be an object/],
      [[], /^spec: must be an object/],
      [{}, /spec\.podName: required/],
      [{ podName: 'Web' }, /spec\.podName: .*DNS-1123/],
      [{ podName: 'a_b' }, /spec\.podName/],
      [{ podName: 'a'.repeat(254) }, /spec\.podName/],
      [{ podName: 'p', podname: 'x' }, /spec\.podname: unknown field/],
      [{ podName: 'p', containers: 'main' }, /spec\.containers: must be a list/],
      [{ podName: 'p', containers: [] }, /spec\.containers: must not be empty/],
      [{ podName: 'p', containers: ['a', 'a'] }, /spec\.containers\[1\]: duplicate/],
      [{ podName: 'p', containers: ['a.b'] }, /spec\.containers\[0\]/],
      [{ podName: 'p', containers: [1] }, /spec\.containers\[0\]/],
      [{ podName: 'p', containers: Array.from({ length: 257 }, (_, i) => `c${i}`) }, /at most 256/],
      [{ podName: 'p', keyTemplate: '{pod}.log' }, /spec\.keyTemplate: .*\{container\} and \{restart\}/],
      [{ podName: 'p', keyTemplate: 5 }, /spec\.keyTemplate: must be a string/],
      [{ podName: 'p', compression: 'zstd' }, /spec\.compression: must be one of none, gzip/],
      [{ podName: 'p', timestamps: 'yes' }, /spec\.timestamps/],
      [{ podName: 'p', retry: { initialInterval: '10' } }, /spec\.retry\.initialInterval: "10" is not a duration/],
      [{ podName: 'p', retry: { initialInterval: '0s' } }, /spec\.retry\.initialInterval: must be greater than zero/],
      [{ podName: 'p', retry: { initialInterval: 5 } }, /spec\.retry\.initialInterval: must be a duration string/],
      [{ podName: 'p', retry: { initialInterval: '20s' } }, /spec\.retry: initialInterval \(20s\) must not exceed maxInterval \(10s\)/],
      [{ podName: 'p', terminatedRetry: { maxInterval: '100ms' } }, /spec\.terminatedRetry: initialInterval \(200ms\) must not exceed maxInterval \(100ms\)/],
      [{ podName: 'p', retry: { backoff: '1s' } }, /spec\.retry\.backoff: unknown field/],
      [{ podName: 'p', retry: '1s' }, /spec\.retry: must be an object/],
      [{ podName: 'p', podNotFoundTimeout: '2 m' }, /spec\.podNotFoundTimeout/],
      [{ podName: 'p', ttlSecondsAfterFinished: -1 }, /spec\.ttlSecondsAfterFinished/],
      [{ podName: 'p', ttlSecondsAfterFinished: 1.5 }, /spec\.ttlSecondsAfterFinished/],
      [{ podName: 'p', ttlSecondsAfterFinished: '60' }, /spec\.ttlSecondsAfterFinished/],
      [{ podName: 'p', ttlSecondsAfterFinished: 2 ** 31 }, /spec\.ttlSecondsAfterFinished/],
    ];
    for (const [spec, re] of cases) expect(fails(spec), JSON.stringify(spec)).to.match(re);
  });

  describe('duration bounds (every duration capped; setTimeout turns > 2^31-1 ms into 1 ms)', () => {
    const table: { field: string; spec: (d: string) => Record<string, unknown>; max: string; maxMs: number }[] = [
      { field: 'spec.retry.initialInterval', spec: (d) => ({ retry: { initialInterval: d, maxInterval: d } }), max: '1h', maxMs: 3_600_000 },
      { field: 'spec.retry.maxInterval', spec: (d) => ({ retry: { maxInterval: d } }), max: '1h', maxMs: 3_600_000 },
      { field: 'spec.retry.maxElapsed', spec: (d) => ({ retry: { maxElapsed: d } }), max: '24h', maxMs: 86_400_000 },
      { field: 'spec.terminatedRetry.initialInterval', spec: (d) => ({ terminatedRetry: { initialInterval: d, maxInterval: d } }), max: '1h', maxMs: 3_600_000 },
      { field: 'spec.terminatedRetry.maxInterval', spec: (d) => ({ terminatedRetry: { maxInterval: d } }), max: '1h', maxMs: 3_600_000 },
      { field: 'spec.terminatedRetry.maxElapsed', spec: (d) => ({ terminatedRetry: { maxElapsed: d } }), max: '24h', maxMs: 86_400_000 },
      { field: 'spec.podNotFoundTimeout', spec: (d) => ({ podNotFoundTimeout: d }), max: '24h', maxMs: 86_400_000 },
    ];
    for (const t of table) {
      it(`${t.field} ≤ ${t.max}`, () => {
        const at = resolveSpec({ podName: 'p', ...t.spec(t.max) });
        expect(at.ok, `${t.max} is allowed`).to.equal(true);
        for (const over of [`${t.max}0.001s`, '1000h', '2562047h']) {
          const msg = fails({ podName: 'p', ...t.spec(over) });
          expect(msg, over).to.include(`${t.field}: must be at most ${t.max}`);
        }
      });
    }

    it('keeps every cap below what a timer can wait, and lists each capped field once', () => {
      for (const cap of Object.values(DURATION_CAPS)) expect(cap.ms).to.be.at.most(2 ** 31 - 1);
      expect(Object.keys(DURATION_CAPS).sort()).to.deep.equal(['holdTimeout', 'interval', 'maxElapsed', 'podNotFoundTimeout']);
    });

    it('caps ttlSecondsAfterFinished at 30 days', () => {
      expect(MAX_TTL_SECONDS).to.equal(30 * 24 * 3600);
      expect(resolveSpec({ podName: 'p', ttlSecondsAfterFinished: MAX_TTL_SECONDS }).ok).to.equal(true);
      expect(fails({ podName: 'p', ttlSecondsAfterFinished: MAX_TTL_SECONDS + 1 })).to.match(/spec\.ttlSecondsAfterFinished: must be an integer between 0 and 2592000 \(30 days\)/);
    });
  });

  it('defines the LogTail API path once', () => {
    expect(API_VERSION).to.equal('logtail.dev/v1alpha1');
    expect(logTailsPath()).to.equal('/apis/logtail.dev/v1alpha1/logtails');
    expect(logTailsPath('ci')).to.equal('/apis/logtail.dev/v1alpha1/namespaces/ci/logtails');
    expect(logTailPath('ci', 'build-1')).to.equal('/apis/logtail.dev/v1alpha1/namespaces/ci/logtails/build-1');
    for (const ns of [undefined, 'ci']) expect(resourcePath({ ...LOGTAIL_RESOURCE, namespace: ns })).to.equal(logTailsPath(ns));
  });

  describe('selectContainers', () => {
    const pod = { initContainers: [{ name: 'setup' }], containers: [{ name: 'main' }, { name: 'sidecar' }] };

    it('defaults to every init and regular container in pod order', () => {
      expect(selectContainers(undefined, pod)).to.deep.equal({
        ok: true,
        containers: [
          { name: 'setup', init: true },
          { name: 'main', init: false },
          { name: 'sidecar', init: false },
        ],
      });
    });

    it('keeps pod order for a requested subset and refuses unknown names', () => {
      expect(selectContainers(['sidecar', 'setup'], pod)).to.deep.equal({
        ok: true,
        containers: [
          { name: 'setup', init: true },
          { name: 'sidecar', init: false },
        ],
      });
      const r = selectContainers(['main', 'mian'], pod);
      expect(r.ok).to.equal(false);
      expect(!r.ok && r.message).to.match(/no container named "mian" \(it has setup, main, sidecar\)/);
    });
  });
});
