// Helpers of the fault matrix (issue 10, docs/reliability.md): cases started
// side by side in a `before`, each awaited by its own `it`; the checks every
// row makes (sha256 of the object = sha256 of the recorded run, an exact
// prefix, the exact phase and reason).
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from '../../../src/dev/proc.ts';
import type { TestCluster } from '../fixture.ts';
import { sha256File, uriToPath, waitForFile, type LogTailObject } from '../operator/harness.ts';

export type Cap = NonNullable<NonNullable<LogTailObject['status']>['containers']>[number];

/** Cases started at once; each `it` awaits its own (a failure is reported there, not in the hook). */
export class Cases {
  readonly #cases = new Map<string, Promise<LogTailObject>>();
  readonly #t0 = Date.now();

  start(name: string, f: () => Promise<LogTailObject>): void {
    const p = f().then((lt) => {
      console.log(`      [${name}] ${lt.status?.phase}/${lt.status?.reason} after ${((Date.now() - this.#t0) / 1000).toFixed(1)} s`);
      return lt;
    });
    p.catch(() => undefined);
    this.#cases.set(name, p);
  }

  get(name: string): Promise<LogTailObject> {
    const p = this.#cases.get(name);
    if (!p) throw new Error(`no case ${name}`);
    return p;
  }
}

/** Where the simulator (or the hollow kubelet's runtime) recorded a run: `restart` for an earlier run of a restarted container. */
export function recordedPath(c: TestCluster, ns: string, pod: string, container: string, restart?: number): string {
  return join(c.env.LOGTAIL_SIM_DIR!, ns, pod, restart === undefined ? `${container}.log` : `${container}.${restart}.log`);
}

export function capsOf(lt: LogTailObject, container = 'main'): Cap[] {
  return [...(lt.status?.containers ?? [])].filter((x) => x.name === container).sort((a, b) => a.restart - b.restart);
}

export const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

/** The stored object of `cap` equals the recorded run, byte for byte (sha256, size, status checksums). */
export async function expectExact(cap: Cap | undefined, recorded: string, what: string): Promise<void> {
  expect(cap?.object, `${what}: no object: ${JSON.stringify(cap)}`).to.not.equal(undefined);
  await waitForFile(recorded);
  const want = await sha256File(recorded);
  const got = await sha256File(uriToPath(cap!.object!.uri));
  expect(got, `${what}: stored ${cap!.object!.size} B, recorded ${readFileSync(recorded).length} B`).to.equal(want);
  expect(cap!.object!.sha256).to.equal(want);
  expect(cap!.bytes).to.equal(readFileSync(recorded).length);
}

/** The stored object is an exact prefix (1 byte or more) of `recorded`; returns its length. */
export function expectPrefix(cap: Cap | undefined, recorded: Buffer, what: string): number {
  expect(cap?.object, `${what}: no object: ${JSON.stringify(cap)}`).to.not.equal(undefined);
  const got = readFileSync(uriToPath(cap!.object!.uri));
  expect(got.length, `${what}: stored ${got.length} B, recorded ${recorded.length} B`).to.be.within(1, recorded.length);
  expect(sha256(got), `${what}: the ${got.length} B stored are not a prefix of the recorded run`).to.equal(sha256(recorded.subarray(0, got.length)));
  expect(cap!.bytes).to.equal(got.length);
  return got.length;
}

/** Every stored line is a line of `recorded`, in the recorded order (a gap may drop lines, never add or reorder). */
export function expectInOrderSubset(stored: Buffer, recorded: Buffer, what: string): void {
  const rec = recorded.toString('latin1').split('\n');
  const got = stored.toString('latin1').split('\n');
  if (got.at(-1) === '') got.pop();
  let i = 0;
  for (const [n, line] of got.entries()) {
    while (i < rec.length && rec[i] !== line) i++;
    expect(i, `${what}: stored line ${n} (${line.slice(0, 60)}…) is not in the recorded run after the previous one`).to.be.below(rec.length);
    i++;
  }
}

export interface PodJson {
  metadata: { uid: string; deletionTimestamp?: string };
  status: {
    phase?: string;
    containerStatuses?: Array<{ name: string; restartCount: number; state: { running?: unknown; waiting?: { reason?: string }; terminated?: { exitCode: number } } }>;
  };
}

export async function getPod(c: TestCluster, ns: string, name: string): Promise<PodJson | undefined> {
  const r = await c.kubectl(['get', 'pod', name, '-n', ns, '-o', 'json']);
  if (r.code !== 0) return undefined;
  return JSON.parse(r.stdout) as PodJson;
}

export async function waitPod(c: TestCluster, ns: string, name: string, what: string, ok: (p: PodJson) => boolean, timeoutMs = 90_000): Promise<PodJson> {
  const end = Date.now() + timeoutMs;
  let last: PodJson | undefined;
  while (Date.now() < end) {
    last = await getPod(c, ns, name);
    if (last && ok(last)) return last;
    await sleep(200);
  }
  throw new Error(`pod ${ns}/${name}: not ${what} in ${timeoutMs} ms; last status ${JSON.stringify(last?.status)}`);
}
