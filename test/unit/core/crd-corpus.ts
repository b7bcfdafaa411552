// Specs on both sides of every validation rule. The unit test runs them
// through a model of the CRD's schema, the e2e test through a real apiserver;
// both compare the verdict with resolveSpec's.

export interface CorpusEntry {
  spec: Record<string, unknown>;
  /** Admission accepts it but the operator refuses it (rules CEL cannot express). */
  operatorStricter?: boolean;
}

const templates = [
  '{logtail}/{pod}-{uid}/{container}-{restart}.log',
  '{container}/{restart}',
  '{pod}.log',
  '{container}',
  '/{container}-{restart}',
  '{container}-{restart}/',
  'a//{container}-{restart}',
  '../{container}-{restart}',
  'a/./{container}-{restart}',
  'a/../{container}-{restart}',
  '..x/{container}-{restart}',
  '{container}-{restart}\\x',
  '{container}-{restart}\t',
  '{container}-{restart}\u007f',
  '{nope}/{container}-{restart}',
  '{container-{restart}',
  '{container}}-{restart}',
  'x'.repeat(495) + '{container}-{restart}',
  'x'.repeat(496) + '{container}-{restart}',
];
const durations = [
  '500ms', '1m30s', '1.5s', '0s', '0.0001s', '10', '1d', '-1s', '1 s', '1'.repeat(31) + 's', '1'.repeat(32) + 's', '2562047h', '2562048h',
  // The caps: intervals ≤ 1h, maxElapsed and podNotFoundTimeout ≤ 24h.
  '1h', '1h0.001s', '3600000ms', '3600001ms', '24h', '24h0.001s', '1440m', '86400.001s', '1000h',
];
export const SPEC_CORPUS: CorpusEntry[] = [
  { spec: {} },
  { spec: { podName: 'web-0' } },
  { spec: { podName: 'Web' } },
  { spec: { podName: 'a.b-c' } },
  { spec: { podName: '-a' } },
  { spec: { podName: 'a'.repeat(253) } },
  { spec: { podName: 'a'.repeat(254) } },
  { spec: { podName: 'p', containers: [] } },
  { spec: { podName: 'p', containers: ['a', 'b'] } },
  { spec: { podName: 'p', containers: ['a', 'a'] } },
  { spec: { podName: 'p', containers: ['a.b'] } },
  { spec: { podName: 'p', containers: ['c'.repeat(64)] } },
  { spec: { podName: 'p', compression: 'gzip' } },
  { spec: { podName: 'p', compression: 'zstd' } },
  { spec: { podName: 'p', timestamps: 'true' } },
  { spec: { podName: 'p', ttlSecondsAfterFinished: 0 } },
  { spec: { podName: 'p', ttlSecondsAfterFinished: -1 } },
  { spec: { podName: 'p', ttlSecondsAfterFinished: 2 ** 31 } },
  { spec: { podName: 'p', ttlSecondsAfterFinished: 2_592_000 } },
  { spec: { podName: 'p', ttlSecondsAfterFinished: 2_592_001 } },
  { spec: { podName: 'p', maxBytes: 1024 } },
  { spec: { podName: 'p', maxBytes: 1023 } },
  { spec: { podName: 'p', maxBytes: 0 } },
  { spec: { podName: 'p', maxBytes: 1_099_511_627_776 } },
  { spec: { podName: 'p', maxBytes: 1_099_511_627_777 } },
  { spec: { podName: 'p', maxBytes: '1Mi' } },
  { spec: { podName: 'p', retry: { initialInterval: '20s' } } },
  { spec: { podName: 'p', retry: { initialInterval: '20s', maxInterval: '1m' } } },
  { spec: { podName: 'p', terminatedRetry: { maxInterval: '100ms' } } },
  { spec: { podName: 'p', terminatedRetry: { initialInterval: '5s' } } },
  ...templates.map((keyTemplate) => ({ spec: { podName: 'p', keyTemplate } })),
  // Ambiguity needs more than a regex: only the operator catches it.
  { spec: { podName: 'p', keyTemplate: '{container}{restart}' }, operatorStricter: true },
  ...durations.flatMap((d) => [
    { spec: { podName: 'p', podNotFoundTimeout: d } },
    { spec: { podName: 'p', retry: { maxElapsed: d } } },
    { spec: { podName: 'p', terminatedRetry: { maxElapsed: d } } },
    { spec: { podName: 'p', retry: { initialInterval: d, maxInterval: d } } },
    { spec: { podName: 'p', terminatedRetry: { maxInterval: d } } },
    { spec: { podName: 'p', holdPod: true, holdTimeout: d } },
  ]),
  { spec: { podName: 'p', holdPod: true } },
  { spec: { podName: 'p', holdPod: 'yes' } },
  { spec: { podName: 'p', holdPod: false, holdTimeout: '5m' } },
];

