// The local cluster's certificates: a node's serving certificate issued at
// start, and a kubelet-serving CSR signed the way the CSR approver does it.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { csrCommonName, makePki, nodeServingCert, signServingCsr } from '../../../src/dev/pki.ts';

describe('dev pki (openssl)', function () {
  this.timeout(30_000);
  let dir: string;
  let pki: string;
  let ca: X509Certificate;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pki-test-'));
    pki = join(dir, 'pki');
    await makePki(pki);
    ca = new X509Certificate(readFileSync(join(pki, 'ca.crt')));
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it("issues a node's serving certificate for its IP, its name and 127.0.0.1, as system:node:NAME", async () => {
    await nodeServingCert(pki, 'kubelet-1', '192.0.2.7');
    const c = new X509Certificate(readFileSync(join(pki, 'kubelet-1.crt')));
    expect(c.checkIssued(ca) && c.verify(ca.publicKey)).to.equal(true);
    expect(c.subject.split('\n').sort()).to.deep.equal(['CN=system:node:kubelet-1', 'O=system:nodes']);
    expect(c.subjectAltName).to.equal('IP Address:192.0.2.7, DNS:kubelet-1, IP Address:127.0.0.1');
    expect(c.checkIP('192.0.2.7')).to.equal('192.0.2.7');
  });

  it('signs a kubelet-serving CSR (EC key, as the kubelet makes it) keeping its SANs, for server auth only', async () => {
    execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'n.key', '-out', 'n.csr', '-subj', '/O=system:nodes/CN=system:node:boot-1', '-addext', 'subjectAltName=DNS:boot-1,IP:192.0.2.7'], { cwd: dir, stdio: 'ignore' });
    const csr = readFileSync(join(dir, 'n.csr'), 'utf8');
    expect(await csrCommonName(pki, csr)).to.equal('system:node:boot-1');
    const pem = await signServingCsr(pki, csr);
    const c = new X509Certificate(pem);
    expect(c.checkIssued(ca) && c.verify(ca.publicKey)).to.equal(true);
    expect(c.subjectAltName).to.equal('DNS:boot-1, IP Address:192.0.2.7');
    expect(c.keyUsage).to.deep.equal(['1.3.6.1.5.5.7.3.1']); // extended key usage serverAuth
    expect(c.ca).to.equal(false);
    // The certificate goes with the kubelet's own key.
    expect(c.checkPrivateKey(createPrivateKey(readFileSync(join(dir, 'n.key'))))).to.equal(true);
    // Two signatures never share a serial (no serial file, concurrent approvers).
    expect(new X509Certificate(await signServingCsr(pki, csr)).serialNumber).to.not.equal(c.serialNumber);
  });
});
