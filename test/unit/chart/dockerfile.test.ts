// deploy/Dockerfile without a container engine: the build is replayed on the
// host, stage by stage. The context is what .dockerignore lets through, every
// COPY source must exist at that point, `npm ci` is stood in for by the
// installed packages (all of them, or only the lockfile's non-dev ones for
// --omit=dev), `npm run build` really runs, and the final stage's entry point
// must start with nothing but what the image would hold.
import { expect } from 'chai';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { parse } from 'yaml';
import { REPO_ROOT } from '../../../src/dev/cluster.ts';
import { run } from '../../../src/dev/proc.ts';
import { CHART_DIR } from './chart-helpers.ts';

const DOCKERFILE = join(REPO_ROOT, 'deploy', 'Dockerfile');
const DOCKERIGNORE = join(REPO_ROOT, '.dockerignore');

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  name: string | undefined;
  base: string;
  steps: Instruction[];
}

function parseDockerfile(text: string): Stage[] {
  const logical: string[] = [];
  let cur = '';
  for (const raw of text.split('\n')) {
    if (/^\s*#/.test(raw) && cur === '') continue;
    if (raw.endsWith('\\')) {
      cur += raw.slice(0, -1) + ' ';
      continue;
    }
    cur += raw;
    if (cur.trim()) logical.push(cur.trim());
    cur = '';
  }
  const args = new Map<string, string>();
  const subst = (s: string) => s.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string | undefined, b: string | undefined) => args.get((a ?? b)!) ?? '');
  const stages: Stage[] = [];
  for (const line of logical) {
    const m = /^(\w+)\s+(.*)$/.exec(line);
    if (!m) throw new Error(`cannot parse Dockerfile line: ${line}`);
    const op = m[1]!.toUpperCase();
    const rest = m[2]!;
    if (op === 'ARG') {
      const [k, v] = rest.split('=');
      if (!args.has(k!)) args.set(k!, v ?? '');
      if (stages.length) stages.at(-1)!.steps.push({ op, args: rest });
      continue;
    }
    if (op === 'FROM') {
      const f = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(subst(rest));
      if (!f) throw new Error(`cannot parse FROM ${rest}`);
      stages.push({ name: f[2], base: f[1]!, steps: [] });
      continue;
    }
    if (!stages.length) throw new Error(`${op} before FROM`);
    stages.at(-1)!.steps.push({ op, args: subst(rest) });
  }
  return stages;
}

/** .dockerignore as Docker applies it: last matching pattern wins, a pattern also matches a path's parent directories. */
function ignoreMatcher(text: string): (rel: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pat = (negate ? l.slice(1) : l).replace(/^\/+|\/+$/g, '');
      const re = new RegExp(
        '^' +
          pat
            .split(/(\*\*|\*|\?)/)
            .map((t) => (t === '**' ? '.*' : t === '*' ? '[^/]*' : t === '?' ? '[^/]' : t.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
            .join('') +
          '$',
      );
      return { negate, re };
    });
  return (rel) => {
    const parts = rel.split('/');
    const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    let ignored = false;
    for (const r of rules) if (prefixes.some((p) => r.re.test(p))) ignored = !r.negate;
    return ignored;
  };
}

/** The files `docker build -f deploy/Dockerfile .` would send, copied to a fresh directory. */
function buildContext(dest: string): void {
  const ignored = ignoreMatcher(existsSync(DOCKERIGNORE) ? readFileSync(DOCKERIGNORE, 'utf8') : '');
  const walk = (rel: string) => {
    for (const name of readdirSync(join(REPO_ROOT, rel))) {
      const r = rel ? `${rel}/${name}` : name;
      if (r === '.git' || r === 'node_modules') continue; // never sent: .dockerignore's first rule excludes them, and walking them is slow
      const st = statSync(join(REPO_ROOT, r));
      if (st.isDirectory()) walk(r);
      else if (!ignored(r)) {
        mkdirSync(dirname(join(dest, r)), { recursive: true });
        cpSync(join(REPO_ROOT, r), join(dest, r));
      }
    }
  };
  walk('');
}

/** What `npm ci --omit=dev` installs: the lockfile's top-level packages not marked dev. */
function productionPackages(): string[] {
  const lock = JSON.parse(readFileSync(join(REPO_ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  return Object.entries(lock.packages)
    .filter(([k, v]) => k.startsWith('node_modules/') && !k.slice('node_modules/'.length).includes('node_modules/') && !v.dev)
    .map(([k]) => k.slice('node_modules/'.length));
}

interface Replay {
  roots: Map<string, string>;
  missing: string[];
  final: { root: string; workdir: string; entry: string[]; user: string | undefined };
  buildOutput: string;
}

async function replay(stages: Stage[], context: string, scratch: string): Promise<Replay> {
  const roots = new Map<string, string>();
  const missing: string[] = [];
  let buildOutput = '';
  let last: Replay['final'] | undefined;
  for (const [i, stage] of stages.entries()) {
    const root = join(scratch, `stage-${i}`);
    mkdirSync(root, { recursive: true });
    let workdir = '/';
    let entry: string[] = [];
    let user: string | undefined;
    const host = (p: string) => join(root, p.startsWith('/') ? p : join(workdir, p));
    for (const step of stage.steps) {
      if (step.op === 'WORKDIR') {
        workdir = step.args.startsWith('/') ? step.args : join(workdir, step.args);
        mkdirSync(host(workdir), { recursive: true });
      } else if (step.op === 'COPY') {
        const words = step.args.split(/\s+/);
        const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
        const paths = words.filter((w) => !w.startsWith('--'));
        const dest = paths.pop()!;
        const srcRoot = from === undefined ? context : roots.get(from);
        if (srcRoot === undefined) throw new Error(`COPY --from=${from}: no such stage`);
        for (const src of paths) {
          const abs = from === undefined ? join(context, src) : join(srcRoot, src);
          if (!existsSync(abs)) {
            missing.push(`${from === undefined ? 'context' : `stage ${from}`}: ${src}`);
            continue;
          }
          const target = dest.endsWith('/') || paths.length > 1 ? join(host(dest), src.split('/').filter(Boolean).pop()!) : host(dest);
          mkdirSync(dirname(target), { recursive: true });
          cpSync(abs, target, { recursive: true, dereference: true });
        }
      } else if (step.op === 'RUN') {
        const cwd = host(workdir);
        if (/^npm ci\b/.test(step.args)) {
          expect(existsSync(join(cwd, 'package-lock.json')), `${step.args}: no package-lock.json in ${workdir}`).to.equal(true);
          if (step.args.includes('--omit=dev')) {
            for (const pkg of productionPackages()) cpSync(join(REPO_ROOT, 'node_modules', pkg), join(cwd, 'node_modules', pkg), { recursive: true, dereference: true });
          } else {
            symlinkSync(join(REPO_ROOT, 'node_modules'), join(cwd, 'node_modules'));
          }
        } else if (step.args === 'npm run build') {
          const r = await run('npm', ['run', 'build'], { cwd, env: { ...process.env, PATH: `${join(cwd, 'node_modules', '.bin')}:${process.env.PATH}` }, timeoutMs: 240_000 });
          buildOutput = r.stdout + r.stderr;
          expect(r.code, `npm run build in the build stage failed:\n${buildOutput}`).to.equal(0);
        } else {
          throw new Error(`this test does not know how to replay RUN ${step.args}; teach it`);
        }
      } else if (step.op === 'ENTRYPOINT' || step.op === 'CMD') {
        const parsed = JSON.parse(step.args) as string[];
        entry = step.op === 'ENTRYPOINT' ? parsed : [...entry, ...parsed];
      } else if (step.op === 'USER') {
        user = step.args;
      }
    }
    if (stage.name) roots.set(stage.name, root);
    last = { root, workdir, entry, user };
  }
  return { roots, missing, final: last!, buildOutput };
}

describe('chart: container image (deploy/Dockerfile)', function () {
  this.timeout(300_000);
  let stages: Stage[];
  let scratch: string;
  let result: Replay;

  before(async function () {
    this.timeout(300_000);
    stages = parseDockerfile(readFileSync(DOCKERFILE, 'utf8'));
    scratch = mkdtempSync(join(tmpdir(), 'logtail-image-'));
    const context = join(scratch, 'context');
    mkdirSync(context);
    buildContext(context);
    result = await replay(stages, context, scratch);
  });

  after(() => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('is multi-stage on Node 24: builds on node:24, runs on a distroless Node 24 image', () => {
    expect(stages.length).to.be.greaterThan(1);
    for (const s of stages.slice(0, -1)) expect(s.base, s.name).to.match(/^node:24[-.]/);
    expect(stages.at(-1)!.base).to.match(/distroless\/nodejs24-/);
  });

  it('every file it COPYs exists (after npm run build), and .dockerignore lets the sources through', () => {
    expect(result.missing).to.deep.equal([]);
    const appRoot = join(result.final.root, result.final.workdir);
    expect(existsSync(join(appRoot, 'dist', 'src', 'cmd', 'main.js')), 'dist/src/cmd/main.js is not in the image').to.equal(true);
    expect(existsSync(join(appRoot, 'package.json')), 'package.json ("type": "module") is not in the image').to.equal(true);
  });

  it('keeps development files out of the build context', () => {
    const context = join(scratch, 'context');
    for (const p of ['test', 'src/dev', 'deploy', 'docs', '.ci', 'node_modules', 'dist']) expect(existsSync(join(context, p)), p).to.equal(false);
  });

  it('puts only production dependencies into the image (not typescript, mocha or the "node" package)', () => {
    const nm = join(result.final.root, result.final.workdir, 'node_modules');
    const installed = new Set(readdirSync(nm).flatMap((n) => (n.startsWith('@') ? readdirSync(join(nm, n)).map((m) => `${n}/${m}`) : [n])));
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
    for (const d of Object.keys(pkg.dependencies)) expect(installed.has(d), `${d} missing`).to.equal(true);
    // A devDependency that a production package also needs (e.g. @types/node)
    // is not dev-only in the lockfile and rightly stays.
    const lock = JSON.parse(readFileSync(join(REPO_ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    const devOnly = Object.keys(pkg.devDependencies).filter((d) => lock.packages[`node_modules/${d}`]?.dev === true);
    expect(devOnly).to.include.members(['node', 'typescript', 'mocha']);
    for (const d of devOnly) expect(installed.has(d), `dev dependency ${d} is in the image`).to.equal(false);
  });

  it('runs `node dist/...` as a numeric non-root user, the one the chart sets', () => {
    const { entry, user } = result.final;
    expect(entry[0]).to.match(/(^|\/)node$/);
    expect(entry[1]).to.match(/^dist\//);
    expect(user, 'no USER in the final stage').to.match(/^[1-9][0-9]*(:[0-9]+)?$/);
    const values = parse(readFileSync(join(CHART_DIR, 'values.yaml'), 'utf8')) as { podSecurityContext: { runAsUser: number; runAsGroup: number } };
    expect(user).to.equal(`${values.podSecurityContext.runAsUser}:${values.podSecurityContext.runAsGroup}`);
  });

  it("starts from the image's files alone: every module of the entry point resolves with production dependencies", async () => {
    const { entry, root, workdir } = result.final;
    // the distroless image's node is this Node 24
    const r = await run(process.execPath, [...entry.slice(1), '--help'], { cwd: join(root, workdir), env: { PATH: '/nonexistent', HOME: '/nonexistent' }, timeoutMs: 60_000 });
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/^usage: logtail-operator/);
  });

  it('no compiled file imports a package outside the production dependencies', () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const dist = join(result.final.root, result.final.workdir, 'dist');
    const bad: string[] = [];
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        const p = join(dir, name);
        if (statSync(p).isDirectory()) walk(p);
        else if (p.endsWith('.js')) {
          const text = readFileSync(p, 'utf8');
          for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)['"]([^'"]+)['"]/g)) {
            const spec = m[1]!;
            if (spec.startsWith('node:') || spec.startsWith('.')) {
              if (spec.startsWith('.') && !existsSync(join(dirname(p), spec))) bad.push(`${relative(dist, p)}: ${spec} (not in the image)`);
              continue;
            }
            const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
            if (!(name in pkg.dependencies)) bad.push(`${relative(dist, p)}: ${spec}`);
          }
        }
      }
    };
    walk(dist);
    expect(bad).to.deep.equal([]);
  });
});
