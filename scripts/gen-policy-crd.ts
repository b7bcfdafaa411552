// Writes crds/logtail.dev_logtailpolicies.yaml (and the chart's copy) from the
// LogTail CRD: a policy's spec.template is the LogTail spec schema without
// podName, so the two cannot drift. test/unit/core/policy-crd.test.ts fails
// when the committed files differ from what this prints.
//   node scripts/gen-policy-crd.ts          # write both files
//   node scripts/gen-policy-crd.ts --check  # exit 1 if they differ
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';

const ROOT = join(fileURLToPath(import.meta.url), '..', '..');
export const POLICY_CRD = join(ROOT, 'crds', 'logtail.dev_logtailpolicies.yaml');
export const CHART_POLICY_CRD = join(ROOT, 'deploy', 'helm', 'logtail-operator', 'crds', 'logtail.dev_logtailpolicies.yaml');

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const COUNT = (d: string) => ({ type: 'integer', format: 'int32', minimum: 0, description: d });

export function policyCrdText(): string {
  const lt = parse(readFileSync(join(ROOT, 'crds', 'logtail.dev_logtails.yaml'), 'utf8')) as Obj;
  const ltSpec = lt.spec.versions[0].schema.openAPIV3Schema.properties.spec as Obj;
  const template: Obj = { ...ltSpec.properties };
  delete template.podName;
  const selector = {
    type: 'object',
    description: 'Standard label selector over the pods of the policy\'s namespace. {} matches every pod.',
    properties: {
      matchLabels: { type: 'object', additionalProperties: { type: 'string', maxLength: 63 }, maxProperties: 64 },
      matchExpressions: {
        type: 'array',
        maxItems: 64,
        items: {
          type: 'object',
          required: ['key', 'operator'],
          properties: {
            key: { type: 'string', minLength: 1, maxLength: 317 },
            operator: { type: 'string', enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'] },
            values: { type: 'array', maxItems: 256, items: { type: 'string', maxLength: 63 } },
          },
          'x-kubernetes-validations': [
            { rule: "self.operator in ['In', 'NotIn'] ? has(self.values) && size(self.values) > 0 : !has(self.values) || size(self.values) == 0", message: 'In and NotIn need values; Exists and DoesNotExist take none' },
          ],
        },
      },
    },
  };
  const crd = {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: 'logtailpolicies.logtail.dev' },
    spec: {
      group: 'logtail.dev',
      scope: 'Namespaced',
      names: { kind: 'LogTailPolicy', listKind: 'LogTailPolicyList', plural: 'logtailpolicies', singular: 'logtailpolicy', shortNames: ['ltp'] },
      // No `categories: [logtail]`: the LogTail CRD's category has its singular's name, and a second
      // member makes `kubectl get logtail NAME` expand to both kinds ("you must specify only one resource").
      versions: [
        {
          name: 'v1alpha1',
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: 'Matched', type: 'integer', jsonPath: '.status.matchedPods', description: 'Matching pods created since the policy.' },
            { name: 'LogTails', type: 'integer', jsonPath: '.status.logTails', description: 'LogTails this policy created that exist now.' },
            { name: 'Streaming', type: 'integer', jsonPath: '.status.phases.Streaming', description: 'Of those, Streaming.' },
            { name: 'Complete', type: 'integer', jsonPath: '.status.phases.Complete', description: 'Of those, Complete.' },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description:
                'LogTailPolicy captures every pod of its namespace that matches spec.selector and is created after the policy (creationTimestamp), each through one ordinary LogTail named <policy>-<pod>-<hash>, labelled logtail.dev/policy=<policy> and owned by the policy.',
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec: {
                  type: 'object',
                  required: ['selector'],
                  properties: {
                    selector,
                    template: { type: 'object', description: 'The spec of every LogTail the policy creates, without podName (set to the pod). Changes apply to pods seen afterwards; LogTails already created keep theirs.', properties: template },
                  },
                },
                status: {
                  type: 'object',
                  description: 'Written by the operator.',
                  properties: {
                    observedGeneration: { type: 'integer', format: 'int64' },
                    matchedPods: COUNT('Pods that match the selector and were created after the policy, existing now.'),
                    logTails: COUNT('LogTails this policy created (label and owner reference) that exist now.'),
                    phases: { type: 'object', description: 'Those LogTails by phase.', properties: Object.fromEntries(['Pending', 'Streaming', 'Complete', 'Incomplete', 'Failed'].map((p) => [p, COUNT(`LogTails in phase ${p}.`)])) },
                  },
                },
              },
            },
          },
        },
      ],
    },
  };
  return '# LogTailPolicy: one LogTail per matching pod. GENERATED by scripts/gen-policy-crd.ts from\n# crds/logtail.dev_logtails.yaml (spec.template = the LogTail spec without podName); do not edit.\n' + stringify(crd, { lineWidth: 0 });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const text = policyCrdText();
  if (process.argv.includes('--check')) {
    const ok = [POLICY_CRD, CHART_POLICY_CRD].every((f) => { try { return readFileSync(f, 'utf8') === text; } catch { return false; } });
    if (!ok) { process.stderr.write('policy CRD out of date: run node scripts/gen-policy-crd.ts\n'); process.exit(1); }
  } else {
    writeFileSync(POLICY_CRD, text);
    writeFileSync(CHART_POLICY_CRD, text);
  }
}
