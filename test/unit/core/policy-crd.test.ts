// The LogTailPolicy CRD is generated from the LogTail CRD (its template is the
// LogTail spec without podName); the committed files must be that output.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { CHART_POLICY_CRD, POLICY_CRD, policyCrdText } from '../../../scripts/gen-policy-crd.ts';
import { POLICY_PLURAL, POLICY_SHORT_NAME, TEMPLATE_FIELDS } from '../../../src/core/policy.ts';

describe('core/policy: the LogTailPolicy CRD', () => {
  const text = policyCrdText();
  it('crds/ and the chart hold exactly the generated CRD (run node scripts/gen-policy-crd.ts)', () => {
    expect(readFileSync(POLICY_CRD, 'utf8')).to.equal(text);
    expect(readFileSync(CHART_POLICY_CRD, 'utf8')).to.equal(text);
  });
  it('names, and a template with every LogTail spec field but podName', () => {
    const crd = parse(text) as { spec: { names: { plural: string; shortNames: string[] }; scope: string; versions: Array<{ schema: { openAPIV3Schema: { properties: { spec: { required: string[]; properties: { template: { properties: Record<string, unknown> } } } } } } }> } };
    expect(crd.spec.names.plural).to.equal(POLICY_PLURAL);
    expect(crd.spec.names.shortNames).to.deep.equal([POLICY_SHORT_NAME]);
    expect(crd.spec.scope).to.equal('Namespaced');
    const spec = crd.spec.versions[0]!.schema.openAPIV3Schema.properties.spec;
    expect(spec.required).to.deep.equal(['selector']);
    expect(Object.keys(spec.properties.template.properties).sort()).to.deep.equal([...TEMPLATE_FIELDS].sort());
  });
});
