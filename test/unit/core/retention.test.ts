import { expect } from 'chai';
import { keepFinalizerWhenFinished, objectsToDelete, retentionOf } from '../../../src/core/retention.ts';
import type { LogTail } from '../../../src/core/spec.ts';

const obj = (uri: string) => ({ uri, size: 1, sha256: 'x', objectSha256: 'x' });
function lt(retention: string | undefined, containers: unknown[] = []): LogTail {
  return { apiVersion: 'logtail.dev/v1alpha1', kind: 'LogTail', metadata: { name: 'x' }, spec: { podName: 'p', ...(retention ? { retention: retention as 'Delete' } : {}) }, status: { containers } as never };
}

describe('core/retention', () => {
  const cases: Array<[string, string | undefined, unknown[], boolean, string[]]> = [
    ['default is Retain: nothing deleted, finalizer dropped when finished', undefined, [{ name: 'a', restart: 0, object: obj('file:///s/a-0') }], false, []],
    ['Retain', 'Retain', [{ name: 'a', restart: 0, object: obj('file:///s/a-0') }], false, []],
    ['Delete: every stored object, in status order', 'Delete', [{ name: 'a', restart: 0, object: obj('file:///s/a-0') }, { name: 'a', restart: 1, object: obj('file:///s/a-1') }, { name: 'b', restart: 0 }], true, ['file:///s/a-0', 'file:///s/a-1']],
    ['Delete: an object listed twice is deleted once', 'Delete', [{ name: 'a', restart: 0, object: obj('s3://b/k') }, { name: 'a', restart: 0, object: obj('s3://b/k') }], true, ['s3://b/k']],
    ['Delete with nothing stored', 'Delete', [], true, []],
    ['an unknown value is treated as Retain (the CRD refuses it)', 'Forever', [{ name: 'a', restart: 0, object: obj('file:///s/a-0') }], false, []],
  ];
  for (const [name, retention, containers, keep, del] of cases) {
    it(name, () => {
      const l = lt(retention, containers);
      expect(keepFinalizerWhenFinished(l)).to.equal(keep);
      expect(objectsToDelete(l)).to.deep.equal(del);
      expect(retentionOf(l)).to.equal(keep ? 'Delete' : 'Retain');
    });
  }
});
