import { createHash } from 'node:crypto';
import { LogStore, MemoryContent } from '../../../../src/dev/simulator/log-store.ts';
import { OutputGenerator } from '../../../../src/dev/simulator/output.ts';
import { parseScript } from '../../../../src/dev/simulator/script.ts';
const START = 1_800_000_000_000_000_000n;
const cases: [string, string, string, number][] = JSON.parse(process.argv[2]!);
for (const [name, json, container, run] of cases) {
  const r = parseScript(json, [container]);
  if (!r.ok) { console.log(JSON.stringify({ name, error: r.error })); continue; }
  const store = new LogStore(new MemoryContent());
  const gen = new OutputGenerator(r.value.containers.get(container)!, START, container, run);
  let now = START;
  for (let i = 0; i < 1e6; i++) {
    const s = gen.step(now, 1 << 20, store); store.commit();
    if (s.done) break;
    now = s.nextDue === null ? now : s.nextDue > now ? s.nextDue : now + 10_000_000n;
  }
  const content = await store.readContent(0, store.contentBytes);
  const recs: string[] = [];
  for (let i = 0; i < store.length; i++) recs.push(`${BigInt(store.sec(i)) * 1_000_000_000n + BigInt(store.nsec(i)) - START}:${store.stream(i)}:${store.partial(i) ? 'P' : 'F'}:${store.offset(i + 1) - store.offset(i)}`);
  console.log(JSON.stringify({ name, sha: createHash('sha256').update(content).digest('hex'), bytes: content.length, records: createHash('sha256').update(recs.join('\n')).digest('hex'), n: store.length }));
}
