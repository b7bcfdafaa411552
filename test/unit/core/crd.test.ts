// The CRD YAML is the API's source of truth; spec.ts re-validates the same
// rules in the operator. These tests keep the two from drifting: same fields,
// same enums and patterns, and no spec admitted by the operator that the
// apiserver would refuse (nor the reverse, except where the operator is
// knowingly stricter).
import { expect } from 'chai';
import { MAX_MAX_BYTES, MIN_MAX_BYTES } from '../../../src/core/truncate.ts';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { SPEC_CORPUS as corpus } from './crd-corpus.ts';
import { DURATION_PATTERN, parseDuration } from '../../../src/core/duration.ts';
import {
  COMPRESSIONS,
  DURATION_CAPS,
  MAX_TTL_SECONDS,
  DNS1123_LABEL_PATTERN,
  DNS1123_SUBDOMAIN_PATTERN,
  GROUP,
  KIND,
  PLURAL,
  RETRY_FIELDS,
  SHORT_NAME,
  SINGULAR,
  SPEC_FIELDS,
  VERSION,
  resolveSpec,
} from '../../../src/core/spec.ts';
import {
  CHECKPOINT_FIELDS,
  UPLOAD_CHECKPOINT_FIELDS,
  CONDITION_FIELDS,
  CONDITION_TYPES,
  CONTAINER_CAPTURE_FIELDS,
  CONTAINER_STATES,
  PHASES,
  POD_RESULTS,
  STATUS_FIELDS,
  MAX_UNCAPTURED_RUNS,
  STORED_OBJECT_FIELDS,
  UNCAPTURED_RUNS_FIELDS,
} from '../../../src/core/status.ts';

interface Schema {
  type?: string;
  description?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  required?: string[];
  enum?: unknown[];
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  'x-kubernetes-list-type'?: string;
  'x-kubernetes-validations'?: { rule: string; message?: string }[];
  [k: string]: unknown;
}

const CRD_PATH = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'crds', 'logtail.dev_logtails.yaml');
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const crd = parse(readFileSync(CRD_PATH, 'utf8')) as any;
const version = crd.spec.versions[0];
const root = version.schema.openAPIV3Schema as Schema;
const spec = root.properties?.spec as Schema;
const status = root.properties?.status as Schema;

function props(s: Schema | undefined): Schema {
  if (s?.properties === undefined) throw new Error('schema node without properties');
  return s as Schema;
}

function keys(s: Schema | undefined): string[] {
  return Object.keys(props(s).properties ?? {}).sort();
}

// JavaScript twins of every CEL rule in the CRD that is not a transition rule.
// A rule missing here fails the test, so a rule cannot change unnoticed.
function durationOr(v: unknown, dflt: string): number {
  return parseDuration(typeof v === 'string' ? v : dflt);
}
const CEL_TWINS: Record<string, (self: never) => boolean> = {
  "self.contains('{container}') && self.contains('{restart}')": (s: string) => s.includes('{container}') && s.includes('{restart}'),
  "!self.startsWith('/') && !self.endsWith('/') && !self.contains('//')": (s: string) =>
    !s.startsWith('/') && !s.endsWith('/') && !s.includes('//'),
  "!self.matches('(^|/)[.][.]?(/|$)')": (s: string) => !/(^|\/)[.][.]?(\/|$)/.test(s),
  "duration(self) > duration('0s')": (s: string) => parseDuration(s) > 0,
  "duration(self) <= duration('1h')": (s: string) => parseDuration(s) <= 3_600_000,
  "duration(self) <= duration('24h')": (s: string) => parseDuration(s) <= 86_400_000,
  "duration(has(self.initialInterval) ? self.initialInterval : '500ms') <= duration(has(self.maxInterval) ? self.maxInterval : '10s')": (
    s: Record<string, unknown>,
  ) => durationOr(s.initialInterval, '500ms') <= durationOr(s.maxInterval, '10s'),
  "duration(has(self.initialInterval) ? self.initialInterval : '200ms') <= duration(has(self.maxInterval) ? self.maxInterval : '5s')": (
    s: Record<string, unknown>,
  ) => durationOr(s.initialInterval, '200ms') <= durationOr(s.maxInterval, '5s'),
};
const TRANSITION_RULES = new Set(['self == oldSelf']);

/**
 * What the apiserver would say about `value` on create, for the subset of
 * OpenAPI the CRD uses; unknown fields are pruned, not refused.
 */
function admissionErrors(s: Schema, value: unknown, path: string): string[] {
  if (value === undefined || value === null) return [];
  const errs: string[] = [];
  const t = s.type;
  const typeOk =
    (t === 'string' && typeof value === 'string') ||
    (t === 'boolean' && typeof value === 'boolean') ||
    (t === 'integer' && Number.isInteger(value)) ||
    (t === 'array' && Array.isArray(value)) ||
    (t === 'object' && typeof value === 'object' && !Array.isArray(value));
  if (!typeOk) return [`${path}: not ${t}`];
  if (s.enum && !s.enum.includes(value)) errs.push(`${path}: enum`);
  if (typeof value === 'string') {
    if (s.pattern !== undefined && !new RegExp(s.pattern).test(value)) errs.push(`${path}: pattern`);
    if (s.minLength !== undefined && value.length < s.minLength) errs.push(`${path}: minLength`);
    if (s.maxLength !== undefined && value.length > s.maxLength) errs.push(`${path}: maxLength`);
  }
  if (typeof value === 'number') {
    if (s.minimum !== undefined && value < s.minimum) errs.push(`${path}: minimum`);
    if (s.maximum !== undefined && value > s.maximum) errs.push(`${path}: maximum`);
  }
  if (Array.isArray(value)) {
    if (s.minItems !== undefined && value.length < s.minItems) errs.push(`${path}: minItems`);
    if (s.maxItems !== undefined && value.length > s.maxItems) errs.push(`${path}: maxItems`);
    if (s['x-kubernetes-list-type'] === 'set' && new Set(value).size !== value.length) errs.push(`${path}: duplicate`);
    value.forEach((v, i) => errs.push(...admissionErrors(s.items as Schema, v, `${path}[${i}]`)));
  }
  if (t === 'object') {
    const obj = value as Record<string, unknown>;
    for (const r of s.required ?? []) if (obj[r] === undefined || obj[r] === null) errs.push(`${path}.${r}: required`);
    for (const [k, sub] of Object.entries(s.properties ?? {})) errs.push(...admissionErrors(sub, obj[k], `${path}.${k}`));
  }
  // The apiserver runs CEL only on values that passed the schema.
  if (errs.length === 0) {
    for (const v of s['x-kubernetes-validations'] ?? []) {
      if (TRANSITION_RULES.has(v.rule)) continue;
      const twin = CEL_TWINS[v.rule];
      if (twin === undefined) throw new Error(`no JavaScript twin for CEL rule ${v.rule}`);
      let pass: boolean;
      try {
        pass = twin(value as never);
      } catch {
        pass = false; // a CEL evaluation error refuses the object too
      }
      if (!pass) errs.push(`${path}: ${v.message ?? v.rule}`);
    }
  }
  return errs;
}

function walk(s: Schema, path: string, visit: (s: Schema, path: string) => void): void {
  visit(s, path);
  for (const [k, sub] of Object.entries(s.properties ?? {})) walk(sub, `${path}.${k}`, visit);
  if (s.items) walk(s.items, `${path}[]`, visit);
}

describe('core/crd (crds/logtail.dev_logtails.yaml)', () => {
  it('declares the API identity the code uses', () => {
    expect(crd.apiVersion).to.equal('apiextensions.k8s.io/v1');
    expect(crd.metadata.name).to.equal(`${PLURAL}.${GROUP}`);
    expect(crd.spec.group).to.equal(GROUP);
    expect(crd.spec.scope).to.equal('Namespaced');
    expect(crd.spec.names).to.include({ kind: KIND, plural: PLURAL, singular: SINGULAR });
    expect(crd.spec.names.shortNames).to.deep.equal([SHORT_NAME]);
    expect(crd.spec.versions).to.have.length(1);
    expect(version).to.include({ name: VERSION, served: true, storage: true });
    expect(version.subresources).to.deep.equal({ status: {} });
  });

  it('prints Pod, Phase, Result, Bytes, Retries, Reason and Age (kubectl get lt shows e.g. Truncated)', () => {
    const cols = (version.additionalPrinterColumns as { name: string; jsonPath: string; priority?: number }[]).filter((c) => !c.priority);
    expect(cols.map((c) => [c.name, c.jsonPath])).to.deep.equal([
      ['Pod', '.spec.podName'],
      ['Phase', '.status.phase'],
      ['Result', '.status.result'],
      ['Bytes', '.status.bytes'],
      ['Retries', '.status.retries'],
      ['Reason', '.status.reason'],
      ['Age', '.metadata.creationTimestamp'],
    ]);
  });

  it('has exactly the spec fields resolveSpec accepts', () => {
    expect(keys(spec)).to.deep.equal([...SPEC_FIELDS].sort());
    expect(spec.required).to.deep.equal(['podName']);
    for (const r of ['retry', 'terminatedRetry']) expect(keys(spec.properties?.[r]), r).to.deep.equal([...RETRY_FIELDS].sort());
    for (const f of SPEC_FIELDS) {
      const sample: Record<string, unknown> = {
        podName: 'p',
        containers: ['c'],
        keyTemplate: '{container}/{restart}',
        compression: 'gzip',
        timestamps: true,
        retry: { initialInterval: '1s', maxInterval: '2s', maxElapsed: '3s' },
        terminatedRetry: { initialInterval: '1s', maxInterval: '2s', maxElapsed: '3s' },
        podNotFoundTimeout: '1s',
        ttlSecondsAfterFinished: 5,
        maxBytes: 4096,
      };
      const r = resolveSpec({ podName: 'p', [f]: sample[f] });
      expect(r.ok, `resolveSpec refuses a valid ${f}: ${!r.ok && r.message}`).to.equal(true);
    }
  });

  it('has exactly the status fields of the status types', () => {
    // Pruned, not preserved; kube-apiserver refuses an explicit false here.
    expect(status['x-kubernetes-preserve-unknown-fields']).to.equal(undefined);
    expect(keys(status)).to.deep.equal([...STATUS_FIELDS].sort());
    const containerItem = status.properties?.containers?.items;
    expect(keys(containerItem)).to.deep.equal([...CONTAINER_CAPTURE_FIELDS].sort());
    expect(keys(containerItem?.properties?.object)).to.deep.equal([...STORED_OBJECT_FIELDS].sort());
    expect(keys(containerItem?.properties?.checkpoint)).to.deep.equal([...CHECKPOINT_FIELDS].sort());
    expect(keys(containerItem?.properties?.upload)).to.deep.equal([...UPLOAD_CHECKPOINT_FIELDS].sort());
    expect(keys(containerItem?.properties?.upload?.properties?.checkpoint)).to.deep.equal([...CHECKPOINT_FIELDS].sort());
    expect(keys(status.properties?.conditions?.items)).to.deep.equal([...CONDITION_FIELDS].sort());
    expect(keys(status.properties?.uncapturedRuns?.items)).to.deep.equal([...UNCAPTURED_RUNS_FIELDS].sort());
  });

  it('bounds spec.maxBytes as resolveSpec does (room for both parts and the marker)', () => {
    expect(spec.properties?.maxBytes?.minimum).to.equal(MIN_MAX_BYTES);
    expect(spec.properties?.maxBytes?.maximum).to.equal(MAX_MAX_BYTES);
    expect(resolveSpec({ podName: 'p', maxBytes: MIN_MAX_BYTES - 1 }).ok).to.equal(false);
  });

  it('bounds the list of uncaptured runs as the code does', () => {
    expect(status.properties?.uncapturedRuns?.maxItems).to.equal(MAX_UNCAPTURED_RUNS);
  });

  it('uses the same enums and patterns as the code', () => {
    expect(spec.properties?.compression?.enum).to.deep.equal([...COMPRESSIONS]);
    expect(status.properties?.phase?.enum).to.deep.equal([...PHASES]);
    expect(status.properties?.result?.enum).to.deep.equal([...POD_RESULTS]);
    expect(status.properties?.containers?.items?.properties?.state?.enum).to.deep.equal([...CONTAINER_STATES]);
    expect(status.properties?.conditions?.items?.properties?.type?.enum).to.deep.equal([...CONDITION_TYPES]);
    expect(spec.properties?.podName?.pattern).to.equal(DNS1123_SUBDOMAIN_PATTERN);
    expect(spec.properties?.containers?.items?.pattern).to.equal(DNS1123_LABEL_PATTERN);
    const durations: string[] = [];
    walk(spec, 'spec', (s, path) => {
      if (s.pattern !== undefined && s.pattern.includes('ms|s|m|h')) durations.push(path);
      if (s.pattern !== undefined && s.pattern.includes('ms|s|m|h')) expect(s.pattern, path).to.equal(DURATION_PATTERN);
    });
    expect(durations).to.have.length(8);
  });

  it('caps every duration with the same bounds as resolveSpec', () => {
    const capOf = (s: Schema | undefined) => s?.['x-kubernetes-validations']?.map((v) => v.rule).find((r) => r.startsWith('duration(self) <='));
    const want = (cap: { text: string }) => `duration(self) <= duration('${cap.text}')`;
    for (const r of ['retry', 'terminatedRetry']) {
      const p = spec.properties?.[r]?.properties;
      expect(capOf(p?.initialInterval), r).to.equal(want(DURATION_CAPS.interval));
      expect(capOf(p?.maxInterval), r).to.equal(want(DURATION_CAPS.interval));
      expect(capOf(p?.maxElapsed), r).to.equal(want(DURATION_CAPS.maxElapsed));
    }
    expect(capOf(spec.properties?.podNotFoundTimeout)).to.equal(want(DURATION_CAPS.podNotFoundTimeout));
    expect(capOf(spec.properties?.holdTimeout)).to.equal(want(DURATION_CAPS.holdTimeout));
    expect(spec.properties?.ttlSecondsAfterFinished?.maximum).to.equal(MAX_TTL_SECONDS);
  });

  it('describes every field (kubectl explain)', () => {
    const missing: string[] = [];
    walk(root, '', (s, path) => {
      if (path === '.metadata') return; // the apiserver forbids anything but `type` there
      if (typeof s.description !== 'string' || s.description.trim().length < 8) missing.push(path || '(root)');
    });
    expect(missing).to.deep.equal([]);
  });

  it('makes the spec and podName immutable', () => {
    expect(spec['x-kubernetes-validations']?.map((v) => v.rule)).to.include('self == oldSelf');
    expect(spec.properties?.podName?.['x-kubernetes-validations']?.map((v) => v.rule)).to.deep.equal(['self == oldSelf']);
  });

  describe('admission and resolveSpec agree', () => {
    it('on a corpus of valid and invalid specs', () => {
      let refused = 0;
      for (const c of corpus) {
        const admission = admissionErrors(spec, c.spec, 'spec');
        const operator = resolveSpec(c.spec);
        const label = `${JSON.stringify(c.spec)}: admission ${JSON.stringify(admission)}, operator ${operator.ok ? 'ok' : operator.message}`;
        if (c.operatorStricter) {
          expect(admission, label).to.deep.equal([]);
          expect(operator.ok, label).to.equal(false);
        } else {
          expect(operator.ok, label).to.equal(admission.length === 0);
        }
        if (!operator.ok) refused++;
      }
      // The corpus exercises both sides.
      expect(refused).to.be.greaterThan(20);
      expect(corpus.length - refused).to.be.greaterThan(15);
    });
  });
});
