import { expect } from 'chai';
import { CrashLoopBackOff, goDuration } from '../../../src/dev/simulator/backoff.ts';

// Expected values follow pkg/kubelet/kuberuntime/kuberuntime_manager.go doBackOff
// with client-go util/flowcontrol Backoff (initial 10 s, max 300 s, no jitter).
describe('simulator crash-loop back-off', () => {
  it('restarts at once after the first exit, then waits 10, 20, 40 … s, capped at 300 s', () => {
    const b = new CrashLoopBackOff(10_000);
    let t = 1_000_000;
    const delays: number[] = [];
    for (let run = 0; run < 8; run++) {
      t += 1000; // each run lasts a second
      const d = b.delayAfterExit(t);
      delays.push(d);
      t += d;
      b.restarted(t - d, t);
    }
    expect(delays).to.deep.equal([0, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000]);
  });

  it('starts over after a run that lasted more than twice the maximum (hasExpired)', () => {
    const b = new CrashLoopBackOff(10_000);
    b.restarted(0, 0);
    expect(b.delayAfterExit(5_000)).to.equal(10_000);
    b.restarted(5_000, 15_000);
    expect(b.delayAfterExit(16_000)).to.equal(20_000);
    b.restarted(16_000, 36_000);
    // A run of 601 s since the last restart: immediate restart, then the initial back-off again.
    expect(b.delayAfterExit(36_000 + 601_000)).to.equal(0);
    b.restarted(36_000 + 601_000, 36_000 + 601_000);
    expect(b.delayAfterExit(36_000 + 602_000)).to.equal(10_000);
  });

  it('scales with a short initial back-off for tests', () => {
    const b = new CrashLoopBackOff(200);
    expect(b.delayAfterExit(0)).to.equal(0);
    b.restarted(0, 0);
    expect(b.delayAfterExit(10)).to.equal(200);
    b.restarted(10, 210);
    expect(b.delayAfterExit(220)).to.equal(400);
  });

  it("prints durations as Go's time.Duration does", () => {
    expect(goDuration(10_000)).to.equal('10s');
    expect(goDuration(80_000)).to.equal('1m20s');
    expect(goDuration(160_000)).to.equal('2m40s');
    expect(goDuration(300_000)).to.equal('5m0s');
    expect(goDuration(500)).to.equal('500ms');
    expect(goDuration(1500)).to.equal('1.5s');
    expect(goDuration(0)).to.equal('0s');
  });
});
