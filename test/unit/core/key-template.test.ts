import { expect } from 'chai';
import {
  DEFAULT_KEY_TEMPLATE,
  escapeValue,
  renderKey,
  validateKeyTemplate,
  type KeyVars,
} from '../../../src/core/key-template.ts';

const vars: KeyVars = {
  namespace: 'team-a',
  logtail: 'nightly',
  pod: 'job-x7k2p',
  container: 'main',
  uid: '0b7e6f8a-1c2d-4e5f-8a9b-0c1d2e3f4a5b',
  restart: 0,
  date: new Date('2026-11-27T23:59:59.999Z'),
};

describe('core/key-template', () => {
  describe('validateKeyTemplate', () => {
    it('accepts the default and other unambiguous templates', () => {
      for (const t of [
        DEFAULT_KEY_TEMPLATE,
        '{container}/{restart}',
        '{date}/{namespace}/{pod}/{container}-{restart}.log',
        '{restart}_{container}',
        '{container}.{restart}.log',
        '{restart}.{container}.log',
        'logs/{container}/r{restart}',
        'x{container}y/{restart}',
        '{container}--{restart}',
        '{container}-{restart}/{container}',
        '{container}{restart}/{container}',
        'a b/ü/{container}-{restart}',
        '{container}.{restart}{pod}',
      ]) {
        expect(validateKeyTemplate(t), t).to.equal(undefined);
      }
    });

    it('rejects syntax errors and unsafe paths with a reason', () => {
      const cases: [string, RegExp][] = [
        ['', /empty/],
        ['{container}-{restart}/{bogus}', /unknown placeholder "\{bogus\}"/],
        ['{container-{restart}', /unbalanced "\{"/],
        ['{container}}-{restart}', /unbalanced "\}"/],
        ['{container}-{restart}{', /unbalanced "\{"/],
        ['{{container}}-{restart}', /unbalanced/],
        ['{Container}-{restart}', /unknown placeholder/],
        ['/{container}-{restart}', /start with "\/"/],
        ['{container}//{restart}', /empty path segment/],
        ['{container}-{restart}/', /empty path segment/],
        ['../{container}-{restart}', /"\.\." path segment/],
        ['a/./{container}-{restart}', /"\." path segment/],
        ['{container}\\{restart}', /backslash/],
        ['{container}-{restart}\n', /control character/],
        ['{container}-{restart}\u0000', /control character/],
        ['{container}-{restart}\u0085', /control character/],
        ['x'.repeat(500) + '{container}-{restart}', /longer than 512/],
        ['{pod}/{restart}.log', /\{container\} and \{restart\}/],
        ['{pod}/{container}.log', /\{container\} and \{restart\}/],
      ];
      for (const [t, re] of cases) expect(validateKeyTemplate(t), JSON.stringify(t)).to.match(re);
    });

    it('rejects templates under which two container instances could share a key', () => {
      for (const t of ['{container}{restart}', '{restart}{container}', '{restart}1{container}', '{pod}{container}{restart}', 'p/{container}{restart}.log', '{restart}{date}{container}']) {
        expect(validateKeyTemplate(t), t).to.match(/ambiguous/);
      }
    });
  });

  describe('renderKey', () => {
    it('renders under the namespace folder, appending .gz under gzip', () => {
      expect(renderKey(DEFAULT_KEY_TEMPLATE, vars, { compression: 'none' })).to.equal(
        'team-a/nightly/job-x7k2p-0b7e6f8a-1c2d-4e5f-8a9b-0c1d2e3f4a5b/main-0.log',
      );
      expect(renderKey('{date}/{container}-{restart}', { ...vars, restart: 12 }, { compression: 'gzip' })).to.equal(
        'team-a/2026-11-27/main-12.gz',
      );
      expect(renderKey('{date}/{container}-{restart}', { ...vars, date: '2026-01-02' }, { compression: 'none' })).to.equal('team-a/2026-01-02/main-0');
      expect(renderKey('{date}/{container}-{restart}', { ...vars, date: '2026-01-02T23:30:00-02:00' }, { compression: 'none' })).to.equal('team-a/2026-01-03/main-0');
    });

    it('always prefixes the LogTail namespace, whatever the template names', () => {
      expect(renderKey('other-ns/{container}-{restart}', { ...vars, namespace: 'a' }, { compression: 'none' })).to.equal('a/other-ns/main-0');
      expect(() => renderKey('../other-ns/{container}-{restart}', vars, { compression: 'none' })).to.throw(/"\.\."/);
      expect(renderKey('{namespace}/{container}-{restart}', vars, { compression: 'none' })).to.equal('team-a/team-a/main-0');
    });

    it('escapes values so that none can add or climb a folder', () => {
      const hostile: KeyVars = { ...vars, namespace: '..', pod: '../../etc', container: 'a/b', logtail: '.', uid: 'x\\y%z', restart: 3 };
      const key = renderKey('{logtail}/{pod}/{uid}/{container}-{restart}', hostile, { compression: 'none' });
      expect(key).to.equal('%2E%2E/%2E/..%2F..%2Fetc/x%5Cy%25z/a%2Fb-3');
      for (const seg of key.split('/')) expect(['', '.', '..']).to.not.include(seg);
      expect(key.split('/')).to.have.length(5);
      expect(escapeValue('é ü')).to.equal('%C3%A9%20%C3%BC');
      expect(escapeValue('...')).to.equal('%2E%2E%2E');
      expect(escapeValue('a..b')).to.equal('a..b');
    });

    it('keeps keys of different containers and restarts apart', () => {
      const names = ['a', 'a-1', 'a-10', 'a1', '1', '1-0', 'main', 'main-0', 'x.y', 'x%2Ey', 'x/y', 'x%2Fy', '..', '.'];
      const restarts = [0, 1, 10, 11, 101];
      for (const t of [DEFAULT_KEY_TEMPLATE, '{container}/{restart}', '{restart}_{container}', '{container}.{restart}.log', '{restart}.{container}.log', 'x{container}y/{restart}']) {
        for (const compression of ['none', 'gzip'] as const) {
          const seen = new Map<string, string>();
          for (const container of names) {
            for (const restart of restarts) {
              const key = renderKey(t, { ...vars, container, restart }, { compression });
              const who = `${container}#${restart}`;
              expect(seen.get(key), `${t}: ${who} collides`).to.equal(undefined);
              seen.set(key, who);
            }
          }
        }
      }
    });

    it('refuses invalid input instead of rendering a bad key', () => {
      expect(() => renderKey('{container}{restart}', vars, { compression: 'none' })).to.throw(/ambiguous/);
      expect(() => renderKey(DEFAULT_KEY_TEMPLATE, { ...vars, pod: '' }, { compression: 'none' })).to.throw(/"pod" is empty/);
      expect(() => renderKey(DEFAULT_KEY_TEMPLATE, { ...vars, restart: -1 }, { compression: 'none' })).to.throw(/restart/);
      expect(() => renderKey(DEFAULT_KEY_TEMPLATE, { ...vars, restart: 1.5 }, { compression: 'none' })).to.throw(/restart/);
      expect(() => renderKey('{date}/{container}-{restart}', { ...vars, date: 'yesterday' }, { compression: 'none' })).to.throw(/date/);
      expect(() => renderKey('{date}/{container}-{restart}', { ...vars, date: new Date(Number.NaN) }, { compression: 'none' })).to.throw(/date/);
      const long = '{pod}'.repeat(4) + '/{container}-{restart}';
      expect(() => renderKey(long, { ...vars, pod: 'p'.repeat(253) }, { compression: 'none' })).to.throw(/1024/);
    });
  });
});
