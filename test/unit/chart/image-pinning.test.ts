// Images pinnable by digest (issue 12, item 5): every base image of
// deploy/Dockerfile comes from a build argument, so a build can pass
// NAME:TAG@sha256:…; the Dockerfile and docs/install.md say how, for both the
// base images and the chart's image.digest. (The chart's rendering of
// image.digest is tested in chart-render.test.ts.)
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../../src/dev/cluster.ts';

const DOCKERFILE = readFileSync(join(REPO_ROOT, 'deploy', 'Dockerfile'), 'utf8');
const INSTALL = readFileSync(join(REPO_ROOT, 'docs', 'install.md'), 'utf8');

describe('chart: images pinnable by digest', () => {
  const args = new Map<string, string>();
  for (const m of DOCKERFILE.matchAll(/^ARG (\w+)=(\S+)$/gm)) args.set(m[1]!, m[2]!);
  const froms = [...DOCKERFILE.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]!);

  it('takes every external base image from a build argument declared before the first FROM', () => {
    const firstFrom = DOCKERFILE.search(/^FROM /m);
    const stageNames = new Set([...DOCKERFILE.matchAll(/^FROM \S+ AS (\w+)/gm)].map((m) => m[1]!));
    expect(froms.length).to.be.greaterThan(1);
    for (const f of froms) {
      if (stageNames.has(f)) continue;
      const m = /^\$\{(\w+)\}$/.exec(f);
      expect(m, `FROM ${f} is not a build argument`).to.not.equal(null);
      expect(args.has(m![1]!), `ARG ${m![1]} has no default`).to.equal(true);
      expect(DOCKERFILE.indexOf(`ARG ${m![1]}=`)).to.be.lessThan(firstFrom);
    }
  });

  it('documents the digest form NAME:TAG@sha256:… for each base image argument, in the Dockerfile and docs/install.md', () => {
    for (const name of args.keys()) {
      const tagOnly = args.get(name)!;
      expect(DOCKERFILE, `Dockerfile shows no digest form for ${name}`).to.include(`--build-arg ${name}=${tagOnly}@sha256:`);
      expect(INSTALL, `docs/install.md shows no digest form for ${name}`).to.include(`--build-arg ${name}=${tagOnly}@sha256:`);
    }
  });

  it('ships no digest it did not pull: defaults are tags, examples are placeholders', () => {
    for (const v of args.values()) expect(v).to.not.match(/@sha256:/);
    expect(DOCKERFILE).to.not.match(/sha256:[0-9a-f]{64}/);
    expect(INSTALL).to.not.match(/sha256:[0-9a-f]{64}/);
    expect(INSTALL).to.match(/digest: sha256:<digest/);
  });
});
