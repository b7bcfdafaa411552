// docs/security.md is the written contract for the operator's permissions:
// its table must list exactly the rules the chart grants.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../../src/dev/cluster.ts';
import { find, flattenRules, render, rulesOf } from './chart-helpers.ts';

const DOC = join(REPO_ROOT, 'docs', 'security.md');

/** What a source line must contain to be the call a verb names. */
const CALL_PATTERN: Record<string, RegExp> = {
  get: /'GET'|\bread[A-Z]\w*\(|\bget[A-Z]\w*\(/,
  list: /\blist[A-Z]\w*\(|\blist = await .*'GET'|request<KubernetesListObject<\w+>>\('GET'/,
  watch: /\.watch\(/,
  patch: /'PATCH'/,
  delete: /'DELETE'/,
  create: /'POST'|\bcreate[A-Z]\w*\(/,
  update: /'PUT'|\breplace[A-Z]\w*\(/,
};

interface CallRef {
  verb: string;
  file: string;
  line: number;
}

/** "list: `src/x.ts:12`; watch: `src/y.ts:3`" or one "`src/x.ts:12`" for every verb. */
function callRefs(cell: string, verbs: string[], where: string): CallRef[] {
  const refs: CallRef[] = [];
  for (const part of cell.split(';').map((p) => p.trim()).filter(Boolean)) {
    const m = /^(?:(\w+): )?`([\w./-]+\.ts):(\d+)`$/.exec(part);
    expect(m, `${where}: "Called at" entry ${JSON.stringify(part)} is not [verb: ]\`file.ts:LINE\``).to.not.equal(null);
    const forVerbs = m![1] ? [m![1]] : verbs;
    for (const verb of forVerbs) refs.push({ verb, file: m![2]!, line: Number(m![3]) });
  }
  expect([...new Set(refs.map((r) => r.verb))].sort(), `${where}: every verb needs a "Called at" reference`).to.deep.equal([...verbs].sort());
  return refs;
}

/** Rows of the table under `heading` as group|resource|verb|names; checks the "Called at" column. */
function documentedRows(heading = '## API permissions'): string[] {
  const text = readFileSync(DOC, 'utf8');
  const start = text.indexOf(heading);
  expect(start, `docs/security.md has no "${heading}" section`).to.be.greaterThan(-1);
  const section = text.slice(start, text.indexOf('\n## ', start + 1));
  const rows: string[] = [];
  for (const line of section.split('\n')) {
    if (!line.startsWith('| ') || line.startsWith('| API group') || line.startsWith('|---')) continue;
    const cells = line.split('|').slice(1, -1).map((c) => c.trim());
    expect(cells, line).to.have.length(6);
    const [groupCell, resourceCell, verbsCell, namesCell, calledAt] = cells as [string, string, string, string, string];
    const verbs = verbsCell.split(',').map((v) => v.trim());
    for (const ref of callRefs(calledAt, verbs, line.slice(0, 60))) {
      const src = readFileSync(join(REPO_ROOT, ref.file), 'utf8').split('\n')[ref.line - 1] ?? '';
      const pattern = CALL_PATTERN[ref.verb];
      expect(pattern, `no call pattern for verb ${ref.verb}`).to.not.equal(undefined);
      expect(src, `docs/security.md cites ${ref.file}:${ref.line} for "${ref.verb}" but that line is not such a call`).to.match(pattern!);
    }
    const group = /^core/.test(groupCell) ? 'core' : groupCell.replace(/`/g, '');
    const resource = resourceCell.replace(/`/g, '');
    const names = namesCell === 'all' ? '*' : 'named';
    for (const verb of verbs) rows.push(`${group}|${resource}|${verb}|${names}`);
  }
  return rows.sort();
}

describe('chart: docs/security.md matches the RBAC the chart renders', function () {
  this.timeout(60_000);

  it('lists exactly the operator rules and the Lease rules, with their name limits', async () => {
    const objs = await render({ release: 'lt', namespace: 'logtail-system' });
    const rendered = [...flattenRules(rulesOf(find(objs, 'ClusterRole', 'lt-logtail-operator'))), ...flattenRules(rulesOf(find(objs, 'Role', 'lt-logtail-operator-leader-election'))), ...flattenRules(rulesOf(find(objs, 'ClusterRole', 'lt-logtail-operator-admission-policy-reader')))]
      .map((r) => r.replace(/\|[^|]+$/, (n) => (n === '|*' ? '|*' : '|named')))
      .sort();
    expect(documentedRows()).to.deep.equal(rendered);
  });

  it('lists exactly what holdPod.enabled adds to the operator rules, in its own section', async () => {
    const rules = async (values: Record<string, unknown>) => flattenRules(rulesOf(find(await render({ release: 'lt', namespace: 'logtail-system', values }), 'ClusterRole', 'lt-logtail-operator')));
    const off = await rules({});
    const added = (await rules({ holdPod: { enabled: true } })).filter((r) => !off.includes(r)).map((r) => r.replace(/\|\*$/, '|*'));
    expect(documentedRows('## Holding pods')).to.deep.equal(added.sort());
    expect(added).to.deep.equal(['core|pods|patch|*']);
  });

  it('says which group the operator creates Events in', () => {
    const text = readFileSync(DOC, 'utf8');
    expect(text).to.match(/core\/v1 Events/);
    expect(text).to.match(/group `""`, not `events\.k8s\.io`/);
  });
});
