// checkov 3.3.30 over the chart, rendered in its namespace with image.digest
// set (the S3 default and a file-store variant with every optional object
// on), and over deploy/Dockerfile (issue 12, item 7): no failed check, and
// every skipped check listed with its reason in docs/security.md ("checkov").
//
// checkov is a Python tool: .ci/run installs it into a virtual environment
// (~/.cache/logtail/checkov, or $LOGTAIL_CHECKOV). Outside CI the test skips
// when it is missing; under CI (CI=true) or with LOGTAIL_REQUIRE_CHECKOV=1 a
// missing checkov is a failure, so the CI path can never skip it.
import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../../../src/dev/cluster.ts';
import { run } from '../../../src/dev/proc.ts';
import { FILE_VALUES, renderRaw } from './chart-helpers.ts';

export const CHECKOV_VERSION = '3.3.30';
const FAKE_DIGEST = 'sha256:' + '0'.repeat(64);

function checkovPath(): string | undefined {
  const candidates = [process.env.LOGTAIL_CHECKOV, join(homedir(), '.cache', 'logtail', 'checkov', 'bin', 'checkov')].filter((p): p is string => !!p);
  return candidates.find((p) => existsSync(p));
}

interface CheckResult {
  check_id: string;
  file_path: string;
  resource: string;
  check_result?: { result: string; suppress_comment?: string };
}
interface Report {
  check_type: string;
  results: { passed_checks?: CheckResult[]; failed_checks?: CheckResult[]; skipped_checks?: CheckResult[] };
  summary: { passed: number; failed: number; skipped: number; parsing_errors: number; checkov_version?: string };
}

/** Check id -> reason, from the table under "## checkov" in docs/security.md. */
function documentedSkips(): Map<string, string> {
  const text = readFileSync(join(REPO_ROOT, 'docs', 'security.md'), 'utf8');
  const start = text.indexOf('## checkov');
  expect(start, 'docs/security.md has no "## checkov" section').to.be.greaterThan(-1);
  const end = text.indexOf('\n## ', start + 1);
  const out = new Map<string, string>();
  for (const m of text.slice(start, end === -1 ? undefined : end).matchAll(/^\| `(CKV_[A-Z0-9_]+)` \| [^|]+ \| ([^|]+) \|$/gm)) out.set(m[1]!, m[2]!.trim());
  return out;
}

describe('chart: checkov is clean on the rendered chart and the Dockerfile', function () {
  this.timeout(300_000);
  let reports: Report[];
  let checkov: string | undefined;

  before(async function () {
    checkov = checkovPath();
    if (!checkov) {
      if (process.env.CI === 'true' || process.env.LOGTAIL_REQUIRE_CHECKOV === '1') {
        throw new Error(`checkov ${CHECKOV_VERSION} is not installed (looked for $LOGTAIL_CHECKOV and ~/.cache/logtail/checkov/bin/checkov); .ci/run installs it`);
      }
      this.skip();
    }
    const dir = mkdtempSync(join(tmpdir(), 'logtail-checkov-'));
    const renders: Array<[string, Parameters<typeof renderRaw>[0]]> = [
      ['chart-s3.yaml', { release: 'lt', namespace: 'logtail-system', values: { image: { repository: 'registry.example.com/logtail-operator', digest: FAKE_DIGEST } } }],
      [
        'chart-file-all-options.yaml',
        {
          release: 'lt',
          namespace: 'logtail-system',
          valuesFiles: [FILE_VALUES],
          values: { image: { repository: 'registry.example.com/logtail-operator', digest: FAKE_DIGEST }, metrics: { auth: { enabled: true }, tls: { existingSecret: 'logtail-http-tls' }, serviceMonitor: { enabled: true } }, holdPod: { enabled: true } },
        },
      ],
      // sharding: 3 replicas, the per-replica Lease Role, a PodDisruptionBudget
      ['chart-sharding.yaml', { release: 'lt', namespace: 'logtail-system', values: { image: { repository: 'registry.example.com/logtail-operator', digest: FAKE_DIGEST }, replicaCount: 3, sharding: { enabled: true } } }],
    ];
    const files: string[] = [];
    for (const [name, o] of renders) {
      const r = await renderRaw(o);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.include(`registry.example.com/logtail-operator:0.1.0@${FAKE_DIGEST}`);
      writeFileSync(join(dir, name), r.stdout);
      files.push(join(dir, name));
    }
    const args = [...files.flatMap((f) => ['-f', f]), '-f', join(REPO_ROOT, 'deploy', 'Dockerfile'), '--framework', 'kubernetes', 'dockerfile', '--output', 'json', '--skip-download'];
    // --skip-download: no call to the vendor's platform (these machines have no network for it)
    const r = await run(checkov, args, { timeoutMs: 240_000, env: { ...process.env, BC_SKIP_MAPPING: 'TRUE' } });
    const json = r.stdout.slice(r.stdout.search(/[[{]/));
    let parsed: Report | Report[];
    try {
      parsed = JSON.parse(json) as Report | Report[];
    } catch {
      throw new Error(`checkov ${args.join(' ')} exited ${r.code} without JSON:\n${r.stdout.slice(0, 2000)}\n${r.stderr.slice(-2000)}`);
    }
    reports = Array.isArray(parsed) ? parsed : [parsed];
  });

  it(`is checkov ${CHECKOV_VERSION}`, async () => {
    const v = await run(checkov!, ['--version']);
    expect(v.stdout.trim()).to.equal(CHECKOV_VERSION);
  });

  it('scans both the Kubernetes manifests and the Dockerfile, with no parsing errors', () => {
    const byType = new Map(reports.map((x) => [x.check_type, x]));
    expect([...byType.keys()].sort()).to.deep.equal(['dockerfile', 'kubernetes']);
    for (const rep of reports) {
      expect(rep.summary.parsing_errors, rep.check_type).to.equal(0);
      expect(rep.summary.passed, rep.check_type).to.be.greaterThan(50);
    }
  });

  it('finds no failed check', () => {
    for (const rep of reports) expect(rep.summary.failed, rep.check_type).to.equal(0);
    const failed = reports.flatMap((rep) => (rep.results.failed_checks ?? []).map((c) => `${c.check_id} ${c.resource} (${c.file_path})`));
    expect(failed).to.deep.equal([]);
  });

  it('skips only checks that docs/security.md lists with their reason, and each listed skip is in use', () => {
    const doc = documentedSkips();
    const skipped = new Set(reports.flatMap((rep) => (rep.results.skipped_checks ?? []).map((c) => c.check_id)));
    expect([...skipped].sort()).to.deep.equal([...doc.keys()].sort());
    for (const [id, reason] of doc) expect(reason.length, `${id} needs a reason`).to.be.greaterThan(20);
  });
});
