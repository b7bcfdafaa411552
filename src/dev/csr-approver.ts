// The delayed signer of a bootstrapping node's serving certificate, started
// by `cluster add-node` once the node is Ready:
//   node src/dev/csr-approver.ts --kubeconfig FILE --node-name NAME --delay-seconds S --pki DIR
// After S seconds it approves the node's pending CSRs (signer
// kubernetes.io/kubelet-serving, subject CN system:node:NAME) through the
// `approval` subresource, signs them with the cluster CA in DIR and writes
// status.certificate through the `status` subresource — what
// kube-controller-manager's approver and signer do in a real cluster (there is
// no controller-manager here, and approval alone issues nothing). It exits
// once it has signed one, or after --give-up-seconds without a CSR.
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeApi } from '../adapters/kube-api.ts';
import { csrCommonName, signServingCsr } from './pki.ts';
import { sleep } from './proc.ts';

export const KUBELET_SERVING_SIGNER = 'kubernetes.io/kubelet-serving';
const CSR_PATH = '/apis/certificates.k8s.io/v1/certificatesigningrequests';

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastUpdateTime?: string;
}

interface Csr {
  metadata: { name: string; resourceVersion?: string };
  spec: { request: string; signerName: string; username?: string };
  status?: { conditions?: Condition[]; certificate?: string };
}

const log = (m: string) => process.stdout.write(`${new Date().toISOString()} ${m}\n`);

const { values } = parseArgs({
  options: {
    kubeconfig: { type: 'string' },
    'node-name': { type: 'string' },
    'delay-seconds': { type: 'string', default: '0' },
    'give-up-seconds': { type: 'string', default: '600' },
    pki: { type: 'string' },
  },
  strict: true,
});
if (!values.kubeconfig || !values['node-name'] || !values.pki) {
  process.stderr.write('usage: csr-approver.ts --kubeconfig FILE --node-name NAME --delay-seconds S --pki DIR [--give-up-seconds N]\n');
  process.exit(2);
}
const node = values['node-name'];
const pki = values.pki;
const delayS = Number(values['delay-seconds']);
const giveUpS = Number(values['give-up-seconds']);
const kc = new KubeConfig();
kc.loadFromFile(values.kubeconfig);
const api = new KubeApi(kc);
process.on('SIGTERM', () => {
  log('SIGTERM: stopping');
  process.exit(0);
});

const has = (c: Csr, type: string) => (c.status?.conditions ?? []).some((x) => x.type === type && x.status === 'True');

/** This node's kubelet-serving CSRs that still wait for a certificate. */
async function pendingCsrs(): Promise<Csr[]> {
  const list = await api.request<{ items: Csr[] }>('GET', CSR_PATH);
  const out: Csr[] = [];
  for (const c of list.items) {
    if (c.spec.signerName !== KUBELET_SERVING_SIGNER || c.status?.certificate || has(c, 'Denied') || has(c, 'Failed')) continue;
    const pem = Buffer.from(c.spec.request, 'base64').toString('utf8');
    if ((await csrCommonName(pki, pem)) === `system:node:${node}`) out.push(c);
  }
  return out;
}

async function approveAndSign(c: Csr): Promise<void> {
  const name = c.metadata.name;
  if (!has(c, 'Approved')) {
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const approved: Csr = {
      ...c,
      status: { ...c.status, conditions: [...(c.status?.conditions ?? []), { type: 'Approved', status: 'True', reason: 'LogTailDevApprove', message: `approved by the local cluster's csr-approver after ${delayS}s`, lastUpdateTime: now }] },
    };
    await api.request('PUT', `${CSR_PATH}/${name}/approval`, approved);
    log(`csr ${name}: approved`);
  }
  const cert = await signServingCsr(pki, Buffer.from(c.spec.request, 'base64').toString('utf8'));
  await api.request('PATCH', `${CSR_PATH}/${name}/status`, { status: { certificate: Buffer.from(cert).toString('base64') } }, 'application/merge-patch+json');
  log(`csr ${name}: signed by the cluster CA and issued`);
}

log(`node ${node}: signing its serving certificate in ${delayS}s`);
await sleep(delayS * 1000);
const end = Date.now() + giveUpS * 1000;
let signed = 0;
while (signed === 0) {
  try {
    for (const c of await pendingCsrs()) {
      await approveAndSign(c);
      signed++;
    }
  } catch (err) {
    log(`node ${node}: ${(err as Error).message}; retrying`);
  }
  if (signed > 0) break;
  if (Date.now() > end) {
    log(`node ${node}: no pending ${KUBELET_SERVING_SIGNER} CSR after ${giveUpS}s; giving up`);
    process.exit(1);
  }
  await sleep(500);
}
api.close();
log(`node ${node}: done (${signed} CSR${signed === 1 ? '' : 's'} signed)`);
