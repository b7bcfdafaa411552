import { expect } from 'chai';
import { MAX_TAGS, SIDECAR_SUFFIX, isSidecarName, objectTags, originLabels, sidecarRecord, tagProblem } from '../../../src/core/object-labels.ts';

const SUMS = { sha256: 'a'.repeat(64), objectSha256: 'b'.repeat(64) };

describe('core/object-labels (S3 tags, file store records)', () => {
  describe("tagProblem: S3's tag rules", () => {
    const cases: Array<[string, string, string, boolean]> = [
      ['a label of ours', 'logtail.dev/retention', 'Delete', true],
      ['every allowed punctuation', 'a+b-c=d.e_f:g/h@i', 'x y+z-=._:/@', true],
      ['unicode letters', 'clé', 'überprüft', true],
      ['an empty value', 'k', '', true],
      ['an empty key', '', 'v', false],
      ['a key of 128 characters', 'k'.repeat(128), 'v', true],
      ['a key of 129 characters', 'k'.repeat(129), 'v', false],
      ['a value of 256 characters', 'k', 'v'.repeat(256), true],
      ['a value of 257 characters', 'k', 'v'.repeat(257), false],
      ['the reserved aws: prefix', 'aws:createdBy', 'v', false],
      ['a comma', 'k', 'a,b', false],
      ['a quote', 'k"', 'v', false],
      ['a control character', 'k', 'a\u0001', false],
    ];
    for (const [name, k, v, ok] of cases) it(name, () => expect(tagProblem(k, v) === undefined, String(tagProblem(k, v))).to.equal(ok));
  });

  it('originLabels: retention, namespace, LogTail, pod, container, and the policy when there is one', () => {
    const o = { namespace: 'ci', logtail: 'build-42', retention: 'Delete' as const, pod: 'build-42-x', container: 'main' };
    expect(originLabels(o)).to.deep.equal({
      'logtail.dev/retention': 'Delete',
      'logtail.dev/namespace': 'ci',
      'logtail.dev/logtail': 'build-42',
      'logtail.dev/pod': 'build-42-x',
      'logtail.dev/container': 'main',
    });
    expect(originLabels({ ...o, policy: 'ci' })['logtail.dev/policy']).to.equal('ci');
  });

  it('objectTags: checksums first, then labels; each within the rules; at most 10', () => {
    const longest = 'a'.repeat(253); // a DNS-1123 subdomain (LogTail or pod name) fits a value
    const labels = originLabels({ namespace: 'n'.repeat(63), logtail: longest, retention: 'Retain', pod: longest, container: 'c'.repeat(63), policy: 'p'.repeat(63) });
    const tags = objectTags(SUMS, labels);
    expect(tags.map((t) => t.Key)).to.deep.equal(['sha256', 'objectSha256', 'logtail.dev/retention', 'logtail.dev/namespace', 'logtail.dev/logtail', 'logtail.dev/pod', 'logtail.dev/container', 'logtail.dev/policy']);
    for (const t of tags) expect(tagProblem(t.Key, t.Value)).to.equal(undefined);
    const many = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, 'v']));
    expect(objectTags(SUMS, many)).to.have.length(MAX_TAGS);
    expect(objectTags(SUMS, { 'bad,key': 'v', ok: 'v' }).map((t) => t.Key)).to.deep.equal(['sha256', 'objectSha256', 'ok']);
    expect(objectTags(SUMS)).to.deep.equal([{ Key: 'sha256', Value: SUMS.sha256 }, { Key: 'objectSha256', Value: SUMS.objectSha256 }]);
  });

  it('sidecar names and records', () => {
    expect(SIDECAR_SUFFIX).to.equal('.logtail.json');
    expect(isSidecarName('ns/a/main-0.log.logtail.json')).to.equal(true);
    expect(isSidecarName('ns/a/main-0.log')).to.equal(false);
    expect(isSidecarName('ns/a/x.logtail.json.gz')).to.equal(false);
    const r = sidecarRecord({ object: 'main-0.log', size: 3, ...SUMS, committedAt: new Date('2026-11-29T10:00:00Z'), labels: { a: 'b' } });
    expect(r).to.deep.equal({ apiVersion: 'logtail.dev/v1alpha1', kind: 'StoredObject', object: 'main-0.log', size: 3, ...SUMS, committedAt: '2026-11-29T10:00:00.000Z', labels: { a: 'b' } });
  });
});
