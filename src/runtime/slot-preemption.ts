// A capture whose stream slot was asked back (FairSlots preemption,
// docs/design.md "Fair share of the stream slots"): its stream has stopped
// and what it read is flushed and checkpointed; the slot goes to the waiting
// namespace, the capture waits for one again and then reads on from its
// checkpoint like after a cut connection. Not a failure: no retry is counted,
// no Warning is emitted.
import type { CaptureDaemon } from './capture-daemon.ts';
import type { SlotLease } from './semaphore.ts';

export async function yieldSlot(d: CaptureDaemon, lease: SlotLease, container: string): Promise<void> {
  const before = { phase: d.status.phase, reason: d.status.reason ?? '', message: d.status.message ?? '' };
  const why = lease.reason;
  d.deps.metrics?.activeStreams.dec();
  d.deps.metrics?.streamPreemptions.inc({ namespace: d.ns });
  d.log.info('stream slot given back (preempted)', { container, namespace: d.ns, reason: why });
  lease.letGo();
  // The freed slot went to a waiter at once (FairSlots.grant): does this capture wait now?
  const mustWait = d.deps.slots.wouldWait(d.ns);
  const back = lease.regain(d.signal);
  const message = `preempted: ${container}'s log stream gave its slot back (${why}); it resumes from its checkpoint when a slot is free (--min-stream-hold=${Math.round(d.deps.slots.minHoldMs / 1000)}s)`;
  // The LogTail waits only when none of its streams is open (another container may still stream).
  const waits = mustWait && d.deps.slots.heldByOwner(d) === 0 && before.phase === 'Streaming';
  if (waits) {
    d.setPhase('Pending', 'WaitingForSlot', message);
    void d.event('Normal', 'Preempted', message);
    await d.publish(true);
  }
  await back;
  d.deps.metrics?.activeStreams.inc();
  if (waits && d.status.phase === 'Pending' && d.status.reason === 'WaitingForSlot') {
    d.setPhase(before.phase, before.reason, before.message);
    void d.publish(true);
  }
  d.log.info('stream slot regained after preemption', { container, namespace: d.ns, grants: lease.grants });
}
