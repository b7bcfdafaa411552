import { expect } from 'chai';
import { ErrorTail, removedContainerText, responseError } from '../../../../src/core/capture/kubelet-error.ts';

const ID = `containerd://${'ab12'.repeat(16)}`;
const OTHER = `containerd://${'cd34'.repeat(16)}`;
const TEXT = `unable to retrieve container logs for ${ID}`;
const l1 = '2026-11-29T10:00:01.000000000Z first line\n';
const l2 = '2026-11-29T10:00:02.000000000Z second line\n';

describe('core/capture/kubelet-error', () => {
  it('the text is the one kuberuntime GetContainerLogs returns', () => {
    expect(removedContainerText(ID).toString()).to.equal(TEXT);
  });

  describe('responseError (whole body)', () => {
    const table: [string, string, unknown][] = [
      ['the whole body is the text', TEXT, { kind: 'whole' }],
      ['the text after complete lines', l1 + l2 + TEXT, { kind: 'trailing', contentBytes: l1.length + l2.length }],
      ['a real log', l1 + l2, { kind: 'none' }],
      ['an empty body', '', { kind: 'none' }],
      ['the text of another container', `unable to retrieve container logs for ${OTHER}`, { kind: 'none' }],
      ['the text with a newline', `${TEXT}\n`, { kind: 'none' }],
      ['the text with one byte more', `${TEXT}0`, { kind: 'none' }],
      ['a prefix of the text', TEXT.slice(0, -1), { kind: 'none' }],
      ['the text inside an unterminated line', `${l1}2026-11-29T10:00:02.000000000Z ${TEXT}`, { kind: 'none' }],
      ['the text as a line of its own, more after', `${TEXT}\n${l1}`, { kind: 'none' }],
      ['the text after a partial line', `${l1}2026-11-29T10:00:02.0${TEXT}`, { kind: 'none' }],
      ['the text twice', TEXT + TEXT, { kind: 'none' }],
    ];
    for (const [name, body, want] of table) {
      it(name, () => {
        expect(responseError(Buffer.from(body, 'latin1'), removedContainerText(ID))).to.deep.equal(want);
      });
    }
  });

  describe('ErrorTail (streamed)', () => {
    // Every body of the table above, cut into chunks at every pair of
    // positions: the forwarded bytes and the verdict never depend on the cuts.
    const bodies = [TEXT, l1 + TEXT, l1 + l2, '', `${TEXT}\n`, `${TEXT}\n${l1}`, TEXT.slice(0, 10), `${l1}u`, l1 + TEXT.slice(0, 20), 'x'.repeat(300) + TEXT];
    for (const body of bodies) {
      it(`${JSON.stringify(body.slice(0, 40))}… (${body.length} bytes) at every split`, () => {
        const whole = responseError(Buffer.from(body, 'latin1'), removedContainerText(ID));
        const buf = Buffer.from(body, 'latin1');
        for (let a = 0; a <= buf.length; a++) {
          for (let b = a; b <= buf.length; b += Math.max(1, Math.floor(buf.length / 17))) {
            const g = new ErrorTail(removedContainerText(ID));
            const out = [...g.push(buf.subarray(0, a)), ...g.push(buf.subarray(a, b)), ...g.push(buf.subarray(b))];
            const e = g.end();
            const got = Buffer.concat([...out, e.rest]).toString('latin1');
            if (e.matched) {
              expect(got + TEXT, `split ${a}/${b}`).to.equal(body);
              expect(whole.kind, `split ${a}/${b}`).to.not.equal('none');
            } else {
              expect(got, `split ${a}/${b}`).to.equal(body);
              expect(whole.kind, `split ${a}/${b}`).to.equal('none');
            }
            expect(e.forwarded, `split ${a}/${b}`).to.equal(Buffer.concat(out).length);
          }
        }
      });
    }

    it('holds nothing back from a stream of timestamped lines', () => {
      const g = new ErrorTail(removedContainerText(ID));
      const chunks = [l1, l2.slice(0, 5), l2.slice(5), l1];
      for (const ch of chunks) expect(Buffer.concat(g.push(Buffer.from(ch))).toString()).to.equal(ch);
      expect(g.end()).to.deep.equal({ matched: false, rest: Buffer.alloc(0), forwarded: l1.length * 2 + l2.length });
    });

    it('the held bytes are a copy: the caller may reuse the chunk', () => {
      const g = new ErrorTail(removedContainerText(ID));
      const chunk = Buffer.from(l1 + TEXT);
      g.push(chunk);
      chunk.fill(0);
      expect(g.end().matched).to.equal(true);
    });
  });
});
