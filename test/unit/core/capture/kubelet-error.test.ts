import { expect } from 'chai';
import { ERROR_TEXT_MAX, ErrorTail, removedContainerText, responseError } from '../../../../src/core/capture/kubelet-error.ts';

const ID = `containerd://${'ab12'.repeat(16)}`;
const OTHER = `containerd://${'cd34'.repeat(16)}`;
const TEXT = `unable to retrieve container logs for ${ID}`;
const NOTFOUND = `rpc error: code = NotFound desc = container "${'9af0'.repeat(16)}" not found`;
const l1 = '2026-11-29T10:00:01.000000000Z first line\n';
const l2 = '2026-11-29T10:00:02.000000000Z second line\n';
const o1 = '2026-11-29T10:00:03.000000000+01:00 offset line\n';

describe('core/capture/kubelet-error', () => {
  it('the text is the one kuberuntime GetContainerLogs returns', () => {
    expect(removedContainerText(ID).toString()).to.equal(TEXT);
  });

  describe('responseError (whole body)', () => {
    const table: [string, string, unknown][] = [
      ['the whole body is the text', TEXT, { kind: 'whole' }],
      ['the text after complete lines', l1 + l2 + TEXT, { kind: 'trailing', contentBytes: l1.length + l2.length }],
      ['a real log', l1 + l2, { kind: 'none' }],
      ['a real log with an offset', l1 + o1, { kind: 'none' }],
      ['an empty body', '', { kind: 'none' }],
      ['the text of another container (whole body: only the exact text)', `unable to retrieve container logs for ${OTHER}`, { kind: 'none' }],
      ['the text of another container after a line', `${l1}unable to retrieve container logs for ${OTHER}`, { kind: 'text', contentBytes: l1.length, text: `unable to retrieve container logs for ${OTHER}` }],
      ['the text with a newline', `${TEXT}\n`, { kind: 'none' }],
      ['the text with one byte more', `${TEXT}0`, { kind: 'none' }],
      ['a prefix of the text', TEXT.slice(0, -1), { kind: 'none' }],
      ['the text inside an unterminated line', `${l1}2026-11-29T10:00:02.000000000Z ${TEXT}`, { kind: 'none' }],
      ['the text as a line of its own, more after', `${TEXT}\n${l1}`, { kind: 'none' }],
      ['the text after a partial prefix', `${l1}2026-11-29T10:00:02.0${TEXT}`, { kind: 'text', contentBytes: l1.length, text: `2026-11-29T10:00:02.0${TEXT}` }],
      ['the text twice', TEXT + TEXT, { kind: 'none' }],
      ['a runtime NotFound after lines', l1 + l2 + NOTFOUND, { kind: 'text', contentBytes: l1.length + l2.length, text: NOTFOUND }],
      ['a runtime NotFound after an offset line', o1 + NOTFOUND, { kind: 'text', contentBytes: o1.length, text: NOTFOUND }],
      ['one byte of error text', `${l1}r`, { kind: 'text', contentBytes: l1.length, text: 'r' }],
      ['a runtime NotFound as the whole body (a response may start mid-line)', NOTFOUND, { kind: 'none' }],
      ['a runtime NotFound glued to an unterminated line', `${l1}2026-11-29T10:00:02.000000000Z part${NOTFOUND}`, { kind: 'none' }],
      ['a malformed line, more after', `${l1}no stamp\n${l2}`, { kind: 'none' }],
      ['a cut inside a prefix', `${l1}2026-11-29T10:00:0`, { kind: 'none' }],
      ['a cut after a whole prefix', `${l1}2026-11-29T10:00:02.000000000Z `, { kind: 'none' }],
      ['a prefix with an invalid date', `${l1}2026-13-29T10:00:02.000000000Z x`, { kind: 'text', contentBytes: l1.length, text: '2026-13-29T10:00:02.000000000Z x' }],
      ['a prefix without its space', `${l1}2026-11-29T10:00:02.000000000Zx`, { kind: 'text', contentBytes: l1.length, text: '2026-11-29T10:00:02.000000000Zx' }],
      ['a continuation chunk of a long line (no newline before)', `2026-11-29T10:00:01.000000000Z ${'y'.repeat(100)}`, { kind: 'none' }],
    ];
    for (const [name, body, want] of table) {
      it(name, () => {
        expect(responseError(Buffer.from(body, 'latin1'), removedContainerText(ID))).to.deep.equal(want);
      });
    }

    it('without a container ID only the general rule applies', () => {
      expect(responseError(Buffer.from(TEXT, 'latin1'))).to.deep.equal({ kind: 'none' });
      expect(responseError(Buffer.from(l1 + NOTFOUND, 'latin1'))).to.deep.equal({ kind: 'text', contentBytes: l1.length, text: NOTFOUND });
    });

    it('a prefix-less line longer than ERROR_TEXT_MAX is released as content', () => {
      const body = Buffer.from(l1 + 'z'.repeat(ERROR_TEXT_MAX + 10), 'latin1');
      const g = new ErrorTail();
      const out = [...g.push(body.subarray(0, 100)), ...g.push(body.subarray(100))];
      const e = g.end();
      expect(Buffer.concat([...out, e.rest]).equals(body)).to.equal(true);
      expect(e.dropped.length).to.equal(0);
    });
  });

  describe('ErrorTail (streamed)', () => {
    // Bodies cut into chunks at every pair of positions: the forwarded bytes,
    // the dropped ones and the verdict never depend on the cuts.
    const bodies = [
      TEXT,
      l1 + TEXT,
      l1 + l2,
      '',
      `${TEXT}\n`,
      `${TEXT}\n${l1}`,
      TEXT.slice(0, 10),
      `${l1}u`,
      l1 + TEXT.slice(0, 20),
      'x'.repeat(300) + TEXT,
      l1 + o1 + NOTFOUND,
      `${l1}2026-11-29T10:00:0`,
      `${l1}bad\n${o1}`,
      `${o1}2026-11-29T10:00:03.000000000+01:00 ${NOTFOUND}`,
    ];
    for (const body of bodies) {
      it(`${JSON.stringify(body.slice(0, 40))}… (${body.length} bytes) at every split`, () => {
        const buf = Buffer.from(body, 'latin1');
        const whole = responseError(buf, removedContainerText(ID));
        for (let a = 0; a <= buf.length; a++) {
          for (let b = a; b <= buf.length; b += Math.max(1, Math.floor(buf.length / 17))) {
            const g = new ErrorTail(removedContainerText(ID));
            const out = [...g.push(buf.subarray(0, a)), ...g.push(buf.subarray(a, b)), ...g.push(buf.subarray(b))];
            const e = g.end();
            const got = Buffer.concat([...out, e.rest]).toString('latin1');
            const at = `split ${a}/${b}`;
            expect(got + e.dropped.toString('latin1'), at).to.equal(body);
            expect(e.rest.length === 0 || e.dropped.length === 0, at).to.equal(true);
            expect(e.forwarded, at).to.equal(Buffer.concat(out).length);
            if (whole.kind === 'none') expect(e.matched || e.dropped.length > 0, at).to.equal(false);
            else if (whole.kind === 'text') {
              expect(e.matched, at).to.equal(false);
              expect(e.dropped.toString('latin1'), at).to.equal(whole.text);
            } else {
              expect(e.matched, at).to.equal(true);
              expect(e.dropped.toString('latin1'), at).to.equal(TEXT);
            }
          }
        }
      });
    }

    it('holds nothing back from a stream of timestamped lines', () => {
      const g = new ErrorTail(removedContainerText(ID));
      const chunks = [l1, l2.slice(0, 5), l2.slice(5), o1];
      const got = chunks.map((ch) => Buffer.concat(g.push(Buffer.from(ch))).toString());
      // The first bytes of a line wait for its prefix; a line ending in its chunk is forwarded whole.
      expect(got).to.deep.equal([l1, '', l2, o1]);
      expect(g.end()).to.deep.equal({ matched: false, rest: Buffer.alloc(0), dropped: Buffer.alloc(0), forwarded: l1.length + l2.length + o1.length });
    });

    it('releases a line as soon as its prefix is valid', () => {
      const g = new ErrorTail();
      expect(Buffer.concat(g.push(Buffer.from(l1 + l2.slice(0, 30)))).toString()).to.equal(l1);
      expect(Buffer.concat(g.push(Buffer.from(l2.slice(30, 32)))).toString()).to.equal(l2.slice(0, 32));
    });

    it('the held bytes are a copy: the caller may reuse the chunk', () => {
      for (const tail of [TEXT, NOTFOUND]) {
        const g = new ErrorTail(removedContainerText(ID));
        const chunk = Buffer.from(l1 + tail);
        g.push(chunk);
        chunk.fill(0);
        expect(g.end().dropped.toString()).to.equal(tail);
      }
    });
  });
});
