import { expect } from 'chai';
import { pathToFileURL } from 'node:url';
import { CaptureError } from '../../../src/adapters/errors.ts';
import { FileStore } from '../../../src/adapters/store/file-store.ts';
import { normalizeStoreUrl, storeFromUrl } from '../../../src/adapters/store/index.ts';
import { S3Store } from '../../../src/adapters/store/s3-store.ts';

describe('adapters/store/index', () => {
  it('normalizes file URLs and paths to absolute file:/// URLs', () => {
    const cwd = '/work/here';
    expect(normalizeStoreUrl('file:///var/data/', cwd)).to.equal('file:///var/data');
    expect(normalizeStoreUrl('file://localhost/var/data', cwd)).to.equal('file:///var/data');
    expect(normalizeStoreUrl('file://./logtail-data', cwd)).to.equal('file:///work/here/logtail-data');
    expect(normalizeStoreUrl('file:logtail-data', cwd)).to.equal('file:///work/here/logtail-data');
    expect(normalizeStoreUrl('./a/../b', cwd)).to.equal('file:///work/here/b');
    expect(normalizeStoreUrl('/abs/dir', cwd)).to.equal('file:///abs/dir');
    expect(normalizeStoreUrl('dir with space', cwd)).to.equal(pathToFileURL('/work/here/dir with space').href);
    expect(normalizeStoreUrl(normalizeStoreUrl('dir with space', cwd), '/elsewhere')).to.equal(pathToFileURL('/work/here/dir with space').href);
  });

  it('normalizes s3 URLs and refuses bad ones', () => {
    expect(normalizeStoreUrl('s3://my-bucket')).to.equal('s3://my-bucket');
    expect(normalizeStoreUrl('s3://my-bucket/')).to.equal('s3://my-bucket');
    expect(normalizeStoreUrl('s3://my-bucket/logs/prod/')).to.equal('s3://my-bucket/logs/prod');
    for (const bad of ['s3://', 's3://B!/x', 's3://ab', 's3://bucket/../x', 's3://bucket/a//b', 'http://x/y', 'file://']) {
      expect(() => normalizeStoreUrl(bad), bad).to.throw(CaptureError);
    }
  });

  it('builds the store the URL names', async () => {
    const f = await storeFromUrl('file:///tmp/logtail-x');
    expect(f).to.be.instanceOf(FileStore);
    expect(f.url).to.equal('file:///tmp/logtail-x');
    const s = await storeFromUrl('s3://bucket/pre/', { endpoint: 'http://127.0.0.1:1', forcePathStyle: true, region: 'us-east-1' });
    expect(s).to.be.instanceOf(S3Store);
    expect(s.url).to.equal('s3://bucket/pre');
    await s.close?.();
  });
});
