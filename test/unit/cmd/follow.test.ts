import { expect } from 'chai';
import { checkPrinted, chooseContainer, type PrintedRun } from '../../../src/cmd/follow.ts';
import type { LogTail } from '../../../src/core/spec.ts';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);

function lt(containers: unknown[], specContainers?: string[]): LogTail {
  return { apiVersion: 'logtail.dev/v1alpha1', kind: 'LogTail', metadata: { name: 'x', namespace: 'ns' }, spec: { podName: 'p', ...(specContainers ? { containers: specContainers } : {}) }, status: { containers } as never };
}
const stored = (name: string, restart: number, sha256: string) => ({ name, restart, state: 'Stored', bytes: 10, object: { uri: `file:///s/${name}-${restart}`, size: 10, sha256, objectSha256: sha256 } });
const run = (container: string, restart: number, sha256: string): PrintedRun => ({ container, restart, bytes: 10, sha256 });

describe('cmd/follow: checking what was printed against the stored objects', () => {
  const cases: Array<[string, unknown[], PrintedRun[], Array<true | RegExp>]> = [
    ['equal', [stored('main', 0, A)], [run('main', 0, A)], [true]],
    ['different bytes', [stored('main', 0, A)], [run('main', 0, B)], [/printed 10 bytes with sha256 b+, the stored object file:\/\/\/s\/main-0 has 10 bytes with sha256 a+/]],
    ['run not captured', [stored('main', 0, A)], [run('main', 1, A)], [/no capture of main restart 1/]],
    ['run not stored', [{ name: 'main', restart: 0, state: 'Failed', reason: 'LogGap', bytes: 0 }], [run('main', 0, A)], [/was not stored \(state Failed, LogGap\)/]],
    ['two runs, each against its own object', [stored('main', 0, A), stored('main', 1, B)], [run('main', 0, A), run('main', 1, A)], [true, /sha256 a+, the stored object file:\/\/\/s\/main-1/]],
    ['another container of the same restart does not count', [stored('side', 0, A)], [run('main', 0, A)], [/no capture of main restart 0/]],
  ];
  for (const [name, caps, printed, want] of cases) {
    it(name, () => {
      const got = checkPrinted(lt(caps), printed);
      expect(got).to.have.length(want.length);
      got.forEach((g, i) => {
        const w = want[i]!;
        if (w === true) expect(g.ok, JSON.stringify(g)).to.equal(true);
        else {
          expect(g.ok).to.equal(false);
          if (!g.ok) expect(g.why).to.match(w);
        }
      });
    });
  }
});

describe('cmd/follow: which container to follow', () => {
  const pod = (names: string[], init: string[] = []) => ({ spec: { containers: names.map((name) => ({ name })), initContainers: init.map((name) => ({ name })) } }) as never;
  it('-c wins', () => expect(chooseContainer(lt([], ['a', 'b']), undefined, 'b')).to.equal('b'));
  it("the LogTail's only container", () => expect(chooseContainer(lt([], ['a']), pod(['a', 'b']), undefined)).to.equal('a'));
  it("the pod's only container", () => expect(chooseContainer(lt([]), pod(['main']), undefined)).to.equal('main'));
  it('init containers count', () => expect(() => chooseContainer(lt([]), pod(['main'], ['init']), undefined)).to.throw(/several containers \(init, main\); choose one with -c/));
  it('no pod yet', () => expect(() => chooseContainer(lt([]), undefined, undefined)).to.throw(/a pod that does not exist yet; choose one with -c/));
});
