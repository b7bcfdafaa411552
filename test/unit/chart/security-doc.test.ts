// docs/security.md is the written contract for the operator's permissions:
// its table must list exactly the rules the chart grants.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../../src/dev/cluster.ts';
import { find, flattenRules, render, rulesOf } from './chart-helpers.ts';

const DOC = join(REPO_ROOT, 'docs', 'security.md');

/** Rows of the table under "## API permissions" as group|resource|verb|names. */
function documentedRows(): string[] {
  const text = readFileSync(DOC, 'utf8');
  const start = text.indexOf('## API permissions');
  expect(start, 'docs/security.md has no "## API permissions" section').to.be.greaterThan(-1);
  const section = text.slice(start, text.indexOf('\n## ', start + 1));
  const rows: string[] = [];
  for (const line of section.split('\n')) {
    if (!line.startsWith('| ') || line.startsWith('| API group') || line.startsWith('|---')) continue;
    const cells = line.split('|').slice(1, -1).map((c) => c.trim());
    expect(cells, line).to.have.length(5);
    const [groupCell, resourceCell, verbsCell, namesCell] = cells as [string, string, string, string];
    const group = /^core/.test(groupCell) ? 'core' : groupCell.replace(/`/g, '');
    const resource = resourceCell.replace(/`/g, '');
    const names = namesCell === 'all' ? '*' : 'named';
    for (const verb of verbsCell.split(',').map((v) => v.trim())) rows.push(`${group}|${resource}|${verb}|${names}`);
  }
  return rows.sort();
}

describe('chart: docs/security.md matches the RBAC the chart renders', function () {
  this.timeout(60_000);

  it('lists exactly the operator rules and the Lease rules, with their name limits', async () => {
    const objs = await render({ release: 'lt', namespace: 'logtail-system' });
    const rendered = [...flattenRules(rulesOf(find(objs, 'ClusterRole', 'lt-logtail-operator'))), ...flattenRules(rulesOf(find(objs, 'Role', 'lt-logtail-operator-leader-election')))]
      .map((r) => r.replace(/\|[^|]+$/, (n) => (n === '|*' ? '|*' : '|named')))
      .sort();
    expect(documentedRows()).to.deep.equal(rendered);
  });

  it('says which group the operator creates Events in', () => {
    const text = readFileSync(DOC, 'utf8');
    expect(text).to.match(/core\/v1 Events/);
    expect(text).to.match(/group `""`, not `events\.k8s\.io`/);
  });
});
