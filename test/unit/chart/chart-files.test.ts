// The chart's files against their sources of truth: the CRD in crds/, the
// package version, and a schema that describes every value.
import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { REPO_ROOT } from '../../../src/dev/cluster.ts';
import { GROUP, KIND, PLURAL, SHORT_NAME, VERSION } from '../../../src/core/spec.ts';
import { CHART_CRD, CHART_DIR, SOURCE_CRD } from './chart-helpers.ts';

interface Schema {
  type?: string | string[];
  properties?: Record<string, Schema>;
  additionalProperties?: boolean | Schema;
}

describe('chart: files', () => {
  it('ships a CRD byte-identical to crds/logtail.dev_logtails.yaml', () => {
    expect(existsSync(SOURCE_CRD), `${SOURCE_CRD} is missing`).to.equal(true);
    expect(existsSync(CHART_CRD), `${CHART_CRD} is missing: copy ${SOURCE_CRD} there`).to.equal(true);
    const same = readFileSync(CHART_CRD).equals(readFileSync(SOURCE_CRD));
    expect(same, `the chart's CRD differs from crds/: run cp ${SOURCE_CRD} ${CHART_CRD}`).to.equal(true);
  });

  it("the chart's CRD is the LogTail API the operator serves", () => {
    const crd = parse(readFileSync(CHART_CRD, 'utf8')) as {
      spec: { group: string; names: { kind: string; plural: string; shortNames?: string[] }; versions: Array<{ name: string; served: boolean; subresources?: { status?: unknown } }> };
    };
    expect(crd.spec.group).to.equal(GROUP);
    expect(crd.spec.names).to.include({ kind: KIND, plural: PLURAL });
    expect(crd.spec.names.shortNames).to.include(SHORT_NAME);
    const v = crd.spec.versions.find((x) => x.name === VERSION);
    expect(v?.served).to.equal(true);
    expect(v?.subresources).to.have.property('status');
  });

  it('Chart.yaml version and appVersion equal package.json version', () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    const chart = parse(readFileSync(join(CHART_DIR, 'Chart.yaml'), 'utf8')) as { version: string; appVersion: string; apiVersion: string };
    expect(chart.apiVersion).to.equal('v2');
    expect(chart.appVersion).to.equal(pkg.version);
    expect(chart.version).to.equal(pkg.version);
  });

  it('values.schema.json describes every key of values.yaml, and nothing that is not there', () => {
    const values = parse(readFileSync(join(CHART_DIR, 'values.yaml'), 'utf8')) as Record<string, unknown>;
    const schema = JSON.parse(readFileSync(join(CHART_DIR, 'values.schema.json'), 'utf8')) as Schema;
    const missing: string[] = [];
    const walk = (v: unknown, s: Schema | undefined, path: string) => {
      if (v === null || typeof v !== 'object' || Array.isArray(v) || !s?.properties) return;
      for (const [k, child] of Object.entries(v)) {
        if (!(k in s.properties)) missing.push(`${path}${k}`);
        walk(child, s.properties[k], `${path}${k}.`);
      }
    };
    walk(values, schema, '');
    expect(missing, 'values without a schema entry').to.deep.equal([]);
    const extra = Object.keys(schema.properties ?? {}).filter((k) => k !== 'global' && !(k in values));
    expect(extra, 'schema entries without a value').to.deep.equal([]);
    expect(schema.additionalProperties).to.equal(false);
  });

  it('values.yaml explains every top-level key with a comment', () => {
    const lines = readFileSync(join(CHART_DIR, 'values.yaml'), 'utf8').split('\n');
    const undocumented: string[] = [];
    lines.forEach((line, i) => {
      const m = /^([A-Za-z][A-Za-z0-9]*):/.exec(line);
      if (!m) return;
      // A comment heads the key's block (the lines up to the previous blank
      // one), or a section documents its children on the next line.
      let j = i - 1;
      while (j >= 0 && lines[j]!.trim() !== '' && !lines[j]!.startsWith('#')) j--;
      const headed = j >= 0 && lines[j]!.startsWith('#');
      const childDocumented = /^\s+#/.test(lines[i + 1] ?? '');
      if (!headed && !childDocumented) undocumented.push(m[1]!);
    });
    expect(undocumented).to.deep.equal([]);
  });
});
