// spec.retention end to end (filesystem store): Delete keeps the LogTail's
// finalizer after it finished and deletes its objects before the LogTail
// goes, whether a user deletes it or its TTL does; Retain leaves them.
import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { sleep } from '../../../src/dev/proc.ts';
import { apply, getLogTail, logTailManifest, podManifest, uriToPath, useOperatorSuite, waitForLogTail } from './harness.ts';

describe('operator: spec.retention (Retain | Delete)', function () {
  this.timeout(180_000);
  const s = useOperatorSuite({ namespaces: ['ret'], operators: [{}] });

  before(async () => {
    await apply(s.c, podManifest(s.ns, 'p', { script: { containers: { main: { lines: 2000, lineBytes: 80, linesPerSecond: 4000, exitCode: 0 } } } }));
  });

  async function complete(name: string, spec: Record<string, unknown>): Promise<string> {
    await apply(s.c, logTailManifest(s.ns, name, { podName: 'p', ...spec }));
    const lt = await waitForLogTail(s.c, s.ns, name, 60_000);
    expect(lt.status?.phase, JSON.stringify(lt.status)).to.equal('Complete');
    const path = uriToPath(lt.status!.containers![0]!.object!.uri);
    expect(existsSync(path)).to.equal(true);
    expect(existsSync(`${path}.logtail.json`), 'the object has its record').to.equal(true);
    return path;
  }

  it('Delete: the finished LogTail keeps its finalizer; deleting it deletes the object first', async () => {
    const path = await complete('drop', { retention: 'Delete' });
    await sleep(1500);
    expect((await getLogTail(s.c, s.ns, 'drop'))?.metadata.finalizers).to.deep.equal(['logtail.dev/finalizer']);
    const d = await s.c.kubectl(['delete', 'lt', 'drop', '-n', s.ns, '--timeout=60s']);
    expect(d.code, d.stderr).to.equal(0);
    expect(await getLogTail(s.c, s.ns, 'drop')).to.equal(undefined);
    expect(existsSync(path), `${path} must be deleted`).to.equal(false);
    expect(existsSync(`${path}.logtail.json`), 'its record is deleted with it').to.equal(false);
  });

  it('Retain (default): deleting the LogTail leaves the object', async () => {
    const path = await complete('keep', {});
    await waitForLogTail(s.c, s.ns, 'keep', 20_000, (lt) => (lt.metadata.finalizers ?? []).length === 0);
    const d = await s.c.kubectl(['delete', 'lt', 'keep', '-n', s.ns, '--timeout=60s']);
    expect(d.code, d.stderr).to.equal(0);
    expect(existsSync(path)).to.equal(true);
  });

  it('Delete with ttlSecondsAfterFinished: the TTL deletion deletes the object too', async () => {
    const path = await complete('ttl', { retention: 'Delete', ttlSecondsAfterFinished: 2 });
    const end = Date.now() + 60_000;
    while ((await getLogTail(s.c, s.ns, 'ttl')) && Date.now() < end) await sleep(300);
    expect(await getLogTail(s.c, s.ns, 'ttl')).to.equal(undefined);
    expect(existsSync(path)).to.equal(false);
    expect(existsSync(`${path}.logtail.json`)).to.equal(false);
  });
});
