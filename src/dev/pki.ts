// The local cluster's certificates, made with openssl: one CA that signs the
// apiserver's and the nodes' serving certificates, and the kubelet-serving
// CSRs of nodes that bootstrap their certificate (see csr-approver.ts).
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runOk } from './proc.ts';

const openssl = (pki: string, args: string[], input?: string) => runOk('openssl', args, { cwd: pki, input });

/** A random positive serial, so concurrent signers need no shared serial file. */
function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  return '0x' + b.toString('hex');
}

/** Writes `name`.key and `name`.crt, signed by the CA in `pki`, for these SANs (openssl syntax: IP:…,DNS:…). */
export async function leafCert(pki: string, name: string, cn: string, sans: string, org?: string): Promise<void> {
  writeFileSync(join(pki, `${name}.ext`), `subjectAltName=${sans}\nextendedKeyUsage=serverAuth,clientAuth\n`);
  await openssl(pki, ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}${org ? `/O=${org}` : ''}`]);
  await openssl(pki, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', serial(), '-out', `${name}.crt`, '-days', '3650', '-extfile', `${name}.ext`]);
}

/** The CA, the apiserver's and the simulator's serving certificates, and the service-account key pair. */
export async function makePki(pki: string): Promise<void> {
  mkdirSync(pki, { recursive: true });
  await openssl(pki, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '3650', '-subj', '/CN=logtail-local-ca']);
  await Promise.all([
    leafCert(pki, 'apiserver', 'kube-apiserver', 'IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc'),
    leafCert(pki, 'kubelet', 'sim-kubelet', 'IP:127.0.0.1,DNS:localhost'),
    (async () => {
      await openssl(pki, ['genrsa', '-out', 'sa.key', '2048']);
      await openssl(pki, ['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub']);
    })(),
  ]);
}

/** A hollow kubelet's serving certificate as a kubelet-serving signer would issue it: CN system:node:NAME, O system:nodes. */
export function nodeServingCert(pki: string, node: string, nodeIp: string): Promise<void> {
  // 127.0.0.1 too: the fault proxy reaches the kubelet there and verifies it with the CA.
  return leafCert(pki, node, `system:node:${node}`, `IP:${nodeIp},DNS:${node},IP:127.0.0.1`, 'system:nodes');
}

/** The subject CN of a PEM certificate request. */
export async function csrCommonName(pki: string, csrPem: string): Promise<string | null> {
  const out = await openssl(pki, ['req', '-noout', '-subject', '-nameopt', 'RFC2253'], csrPem);
  return /(?:^|[=,])CN=([^,\n]+)/.exec(out.replace(/^subject=/, ''))?.[1] ?? null;
}

/**
 * Signs a kubelet-serving CSR with the cluster CA: the request's own SANs are
 * kept (copy_extensions), the usages are those of a serving certificate.
 * Returns the certificate as PEM.
 */
export async function signServingCsr(pki: string, csrPem: string, days = 365): Promise<string> {
  const tag = randomBytes(6).toString('hex');
  const ext = join(pki, `csr-${tag}.ext`);
  writeFileSync(ext, 'keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\n');
  return openssl(pki, ['x509', '-req', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', serial(), '-days', String(days), '-copy_extensions', 'copyall', '-extfile', ext], csrPem);
}
