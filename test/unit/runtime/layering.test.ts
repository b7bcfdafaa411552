// Issue 10, "Structure": only src/adapters talks to the outside. src/runtime and
// src/core may import types from @kubernetes/client-node, never values
// (ListWatch, Watch, the generated API clients); and every retry loop uses the
// one retry module, src/adapters/retry.ts.
import { expect } from 'chai';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../../src/dev/cluster.ts';

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** The value imports of `module` in `src`: `import { A, type B }` gives A; `import type {…}` gives nothing. */
export function valueImports(src: string, module: string): string[] {
  const out: string[] = [];
  const re = /import\s+(type\s+)?([^;]*?)\s+from\s+['"]([^'"]+)['"]/gs;
  for (const m of src.matchAll(re)) {
    if (m[3] !== module || m[1]) continue;
    const clause = m[2]!.trim();
    const named = clause.match(/\{([^}]*)\}/)?.[1] ?? '';
    for (const n of named.split(',').map((x) => x.trim()).filter(Boolean)) if (!n.startsWith('type ')) out.push(n);
    const head = clause.replace(/\{[^}]*\}/, '').replace(/,/g, ' ').trim();
    if (head) out.push(head);
  }
  return out;
}

describe('layering', () => {
  it('valueImports tells value imports from type imports', () => {
    expect(valueImports(`import { ListWatch, type KubeConfig } from '@kubernetes/client-node';`, '@kubernetes/client-node')).to.deep.equal(['ListWatch']);
    expect(valueImports(`import type { KubeConfig } from '@kubernetes/client-node';`, '@kubernetes/client-node')).to.deep.equal([]);
    expect(valueImports(`import * as k8s from '@kubernetes/client-node';`, '@kubernetes/client-node')).to.deep.equal(['* as k8s']);
    expect(valueImports(`import {\n  CoreV1Api,\n  type V1Pod,\n} from '@kubernetes/client-node';`, '@kubernetes/client-node')).to.deep.equal(['CoreV1Api']);
  });

  for (const layer of ['runtime', 'core']) {
    it(`src/${layer} imports no @kubernetes/client-node values`, () => {
      const found = tsFiles(join(REPO_ROOT, 'src', layer)).flatMap((f) => valueImports(readFileSync(f, 'utf8'), '@kubernetes/client-node').map((v) => `${f.slice(REPO_ROOT.length + 1)}: ${v}`));
      expect(found).to.deep.equal([]);
    });
  }

  it('no hand-written exponential delay in the operator (src/runtime, src/adapters, src/cmd, src/core): retry loops use src/adapters/retry.ts', () => {
    const pattern = /\b\d+\s*\*\s*2\s*\*\*|\bMath\.pow\(\s*2|\*=\s*2\b|\b2\s*\*\*\s*(attempt|attempts|retries|tries|failures|n|i|k)\b/;
    const found: string[] = [];
    for (const layer of ['runtime', 'adapters', 'cmd', 'core']) {
      for (const f of tsFiles(join(REPO_ROOT, 'src', layer))) {
        if (f.endsWith(join('adapters', 'retry.ts'))) continue;
        readFileSync(f, 'utf8').split('\n').forEach((line, i) => {
          if (pattern.test(line)) found.push(`${f.slice(REPO_ROOT.length + 1)}:${i + 1}: ${line.trim()}`);
        });
      }
    }
    expect(found).to.deep.equal([]);
  });
});
