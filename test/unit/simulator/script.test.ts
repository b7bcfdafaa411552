import { expect } from 'chai';
import { STDERR, STDOUT } from '../../../src/dev/simulator/log-store.ts';
import { mergeFaults, parseFaults, parseScript } from '../../../src/dev/simulator/script.ts';

function script(obj: unknown, names = ['app']) {
  return parseScript(JSON.stringify(obj), names);
}

describe('simulator script annotation', () => {
  it('parses the required keys of a container', () => {
    const r = script({ containers: { app: { lines: 10, lineBytes: 200, linesPerSecond: 50, exitCode: 3 } } });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    const c = r.value.containers.get('app')!;
    expect(c.exitCodes).to.deep.equal([3]);
    expect(c.segments).to.have.length(1);
    expect(c.segments[0]).to.include({ kind: 'generated', lines: 10, lineBytes: 200, linesPerSecond: 50, burst: 1, stream: STDOUT });
  });

  it('parses text, repeat, burst, stderr and restart keys', () => {
    const r = script({
      containers: {
        app: { text: 'a\nb', repeat: 3, burst: 4, stream: 'stderr', exitCodes: [1, 1, 0], startDelaySeconds: 2, holdSeconds: -1, restartDelaySeconds: 0.5 },
      },
    });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    const c = r.value.containers.get('app')!;
    expect(c.segments[0]!.kind).to.equal('text');
    expect(c.segments[0]!.text.toString()).to.equal('a\nb');
    expect(c.segments[0]).to.include({ repeat: 3, burst: 4, stream: STDERR });
    expect(c).to.include({ startDelaySeconds: 2, holdSeconds: -1, restartDelaySeconds: 0.5 });
    expect(c.exitCodes).to.deep.equal([1, 1, 0]);
  });

  it("defaults the restart timings to the kubelet's and accepts shorter ones", () => {
    const d = script({ containers: { app: { lines: 1 } } });
    expect(d.ok && d.value.containers.get('app')).to.include({ restartDelaySeconds: 10, syncSeconds: 0.1, resyncSeconds: 60 });
    const s = script({ containers: { app: { lines: 1, restartDelaySeconds: 0.2, syncSeconds: 0.05, resyncSeconds: 0.1 } } });
    expect(s.ok && s.value.containers.get('app')).to.include({ restartDelaySeconds: 0.2, syncSeconds: 0.05, resyncSeconds: 0.1 });
    const bad = script({ containers: { app: { syncSeconds: -1 } } });
    expect(bad.ok).to.equal(false);
  });

  it('decodes textBase64 byte-exactly', () => {
    const bytes = Buffer.from([0, 255, 13, 10, 200]);
    const r = script({ containers: { app: { textBase64: bytes.toString('base64') } } });
    expect(r.ok && r.value.containers.get('app')!.segments[0]!.text.equals(bytes)).to.equal(true);
  });

  it('parses segments', () => {
    const r = script({ containers: { app: { segments: [{ text: 'hello\n', stream: 'stderr' }, { lines: 5, lineBytes: 20, stderrEvery: 2, pauseSeconds: 1 }] } } });
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    const segs = r.value.containers.get('app')!.segments;
    expect(segs.map((s) => s.kind)).to.deep.equal(['text', 'generated']);
    expect(segs[1]).to.include({ stderrEvery: 2, pauseSeconds: 1 });
  });

  it('gives unnamed containers and pods without the annotation the default script', () => {
    const none = parseScript(undefined, ['a', 'b']);
    expect(none.ok).to.equal(true);
    if (!none.ok) return;
    const d = none.value.containers.get('b')!;
    expect(d.exitCodes).to.deep.equal([0]);
    expect(d.segments[0]!.lines).to.be.greaterThan(0);
    const some = script({ containers: { a: { lines: 1 } } }, ['a', 'b']);
    expect(some.ok && some.value.containers.get('b')!.segments[0]!.lines).to.be.greaterThan(0);
  });

  const bad: [string, unknown, RegExp][] = [
    ['unknown top-level key', { container: {} }, /unknown key "container"/],
    ['unknown container key', { containers: { app: { line: 3 } } }, /unknown key "line"/],
    ['container not in the pod', { containers: { web: { lines: 1 } } }, /no container "web"/],
    ['negative lines', { containers: { app: { lines: -1 } } }, /lines: must be an integer >= 0/],
    ['zero lineBytes', { containers: { app: { lines: 1, lineBytes: 0 } } }, /lineBytes/],
    ['lines and text', { containers: { app: { lines: 1, text: 'x' } } }, /not both/],
    ['exit code out of range', { containers: { app: { exitCode: 256 } } }, /exitCode: must be an integer from 0 to 255/],
    ['zero linesPerSecond', { containers: { app: { lines: 1, linesPerSecond: 0 } } }, /linesPerSecond: must be a number > 0/],
    ['bad stream', { containers: { app: { lines: 1, stream: 'out' } } }, /stream/],
    ['segments plus inline keys', { containers: { app: { lines: 1, segments: [] } } }, /segments/],
    ['containers not an object', { containers: [] }, /containers/],
  ];
  for (const [what, obj, re] of bad) {
    it(`rejects ${what}`, () => {
      const r = script(obj);
      expect(r.ok).to.equal(false);
      if (!r.ok) expect(r.error).to.match(re);
    });
  }

  it('rejects malformed JSON with the annotation name', () => {
    const r = parseScript('{"containers": {', ['app']);
    expect(r.ok).to.equal(false);
    if (!r.ok) expect(r.error).to.match(/^sim\.logtail\.dev\/script: not valid JSON/);
  });
});

describe('simulator faults annotation', () => {
  it('parses every fault key', () => {
    const r = parseFaults(
      JSON.stringify({
        tlsAlertSeconds: 5,
        cutEveryBytes: 1000,
        terminatedDelaySeconds: 3,
        http500Count: 2,
        deleteAfterSeconds: 4,
        deleteGraceSeconds: 10,
        endStreamAfterBytes: 77,
        stallAfterBytes: 0,
        containerLogMaxSize: '10Mi',
        timestampOffset: '-03:30',
      }),
    );
    expect(r.ok).to.equal(true);
    if (!r.ok) return;
    expect(r.value).to.deep.equal({
      tlsAlertSeconds: 5,
      cutEveryBytes: 1000,
      terminatedDelaySeconds: 3,
      http500Count: 2,
      deleteAfterSeconds: 4,
      deleteGraceSeconds: 10,
      endStreamAfterBytes: 77,
      stallAfterBytes: 0,
      containerLogMaxSize: 10 * 1024 * 1024,
      timestampOffset: -210,
    });
  });

  it('parses timestampOffset in minutes east of UTC', () => {
    expect(parseFaults('{"timestampOffset": "+05:45"}')).to.deep.equal({ ok: true, value: { timestampOffset: 345 } });
    expect(parseFaults('{"timestampOffset": "-00:00"}')).to.deep.equal({ ok: true, value: { timestampOffset: 0 } });
    expect(parseFaults('{"timestampOffset": "+23:59"}')).to.deep.equal({ ok: true, value: { timestampOffset: 1439 } });
  });

  it('accepts no annotation', () => {
    expect(parseFaults(undefined)).to.deep.equal({ ok: true, value: {} });
  });

  for (const [raw, re] of [
    ['{"cutEveryBytes": 0}', /cutEveryBytes/],
    ['{"tlsAlertSecs": 1}', /unknown key "tlsAlertSecs"/],
    ['{"deleteGraceSeconds": 1}', /needs deleteAfterSeconds/],
    ['{"containerLogMaxSize": "10MB"}', /containerLogMaxSize/],
    ['{"timestampOffset": "03:30"}', /timestampOffset: must be a UTC offset/],
    ['{"timestampOffset": "+24:00"}', /timestampOffset/],
    ['{"timestampOffset": "+05:60"}', /timestampOffset/],
    ['{"timestampOffset": "-3:30"}', /timestampOffset/],
    ['{"timestampOffset": -210}', /timestampOffset/],
    ['[1]', /must be a JSON object/],
    ['not json', /not valid JSON/],
  ] as const) {
    it(`rejects ${raw}`, () => {
      const r = parseFaults(raw);
      expect(r.ok).to.equal(false);
      if (!r.ok) expect(r.error).to.match(re);
    });
  }

  it('lets pod faults override node faults', () => {
    expect(mergeFaults({ cutEveryBytes: 10, http500Count: 1 }, { cutEveryBytes: 20 })).to.deep.equal({ cutEveryBytes: 20, http500Count: 1 });
  });
});
