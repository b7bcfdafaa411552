// The chart's NetworkPolicy on the real apiserver (issue 12, item 4): rendered
// by default, accepted by the API's validation as rendered and with a custom
// scraper selector, and read back selecting the operator's pods and admitting
// only the scraper to the HTTP port. (No network plugin runs on the local
// control plane, so enforcement itself is the plugin's and is not tested here.)
import { expect } from 'chai';
import { cluster, uniqueName, type TestCluster } from '../fixture.ts';
import { createNamespace, mustKubectl, renderChart } from './chart-e2e.ts';

interface NetPol {
  metadata: { name: string; namespace: string };
  spec: { podSelector: { matchLabels: Record<string, string> }; policyTypes: string[]; ingress: Array<{ from: unknown[]; ports: unknown[] }> };
}

describe('chart: metrics NetworkPolicy applied on the apiserver', function () {
  this.timeout(120_000);
  let c: TestCluster;
  let ns: string;

  before(async function () {
    this.timeout(600_000);
    c = await cluster();
    ns = uniqueName('chart-np');
    await createNamespace(c, ns);
  });

  after(async function () {
    await c?.kubectl(['delete', 'namespace', ns, '--wait=false']);
  });

  async function applyPolicyOf(values: Record<string, unknown>): Promise<NetPol> {
    const r = await renderChart({ release: uniqueName('np'), namespace: ns, values });
    const np = r.objects.filter((o) => o.kind === 'NetworkPolicy');
    expect(np, 'one NetworkPolicy rendered').to.have.length(1);
    await mustKubectl(c, ['apply', '-f', '-'], JSON.stringify(np[0]));
    const back = JSON.parse(await mustKubectl(c, ['get', 'networkpolicy', np[0]!.metadata.name, '-n', ns, '-o', 'json'])) as NetPol;
    expect(r.deployment.spec.template.metadata.labels).to.include(back.spec.podSelector.matchLabels);
    return back;
  }

  it('the default policy is accepted and admits only the monitoring namespace\'s Prometheus pods to port http', async () => {
    const np = await applyPolicyOf({});
    expect(np.spec.policyTypes).to.deep.equal(['Ingress']);
    expect(np.spec.ingress).to.deep.equal([
      {
        from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } }, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } } }],
        ports: [{ protocol: 'TCP', port: 'http' }],
      },
    ]);
  });

  it('a configured scraper selector is accepted as given', async () => {
    const sel = { namespaceSelector: { matchLabels: { team: 'observability' } }, podSelector: { matchExpressions: [{ key: 'app', operator: 'In', values: ['vmagent', 'prometheus'] }] } };
    const np = await applyPolicyOf({ networkPolicy: { metricsScraper: sel } });
    expect(np.spec.ingress[0]!.from).to.deep.equal([sel]);
  });

  it('a malformed selector is refused by the apiserver, not silently widened', async () => {
    const r = await renderChart({ release: uniqueName('np'), namespace: ns, values: { networkPolicy: { metricsScraper: { namespaceSelector: { matchExpressions: [{ key: 'x', operator: 'Bogus' }] }, podSelector: {} } } } });
    const np = r.objects.find((o) => o.kind === 'NetworkPolicy')!;
    const out = await c.kubectl(['apply', '-f', '-'], { input: JSON.stringify(np) });
    expect(out.code).to.not.equal(0);
    expect(out.stderr).to.match(/Unsupported value: "Bogus"|not a valid selector operator|invalid/i);
  });
});
