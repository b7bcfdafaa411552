// Fair share of the stream slots between namespaces (issue 11 item 3), as
// pure decisions over counts; src/runtime/semaphore.ts (FairSlots) keeps the
// state and calls these.
//
// Policy: max-min fairness. A free slot goes to the waiting namespace that
// holds the fewest slots (ties: the one served longest ago, then the one whose
// oldest waiter came first: round robin), to its oldest waiter; a namespace at its cap (optional, --max-streams-per-namespace)
// gets none. Nobody else waiting: a namespace may use every free slot (no slot
// idles). A namespace's share while others wait is ceil(capacity / namespaces
// that hold or want slots), never more than its cap.

export interface Waiter {
  namespace: string;
  /** Arrival order; smaller came first. */
  seq: number;
}

/** Slots per namespace when `wanting` namespaces (holders and waiters together) share `capacity`. */
export function fairShare(capacity: number, wanting: number, cap?: number): number {
  const share = Math.ceil(capacity / Math.max(1, wanting));
  return cap === undefined ? share : Math.min(cap, share);
}

/**
 * Index in `waiters` of the one that gets the next free slot, or -1 when none
 * may (all at their namespace's cap). `held` counts the slots each namespace
 * holds now; `lastServed` orders namespaces by their latest grant (larger =
 * more recent; absent = never).
 */
export function pickNext(waiters: readonly Waiter[], held: ReadonlyMap<string, number>, cap?: number, lastServed: ReadonlyMap<string, number> = new Map()): number {
  let best = -1;
  let bestHeld = Infinity;
  let bestServed = Infinity;
  let bestSeq = Infinity;
  const seenNs = new Set<string>();
  for (let i = 0; i < waiters.length; i++) {
    const w = waiters[i]!;
    // Within a namespace strictly first come, first served: only its oldest waiter competes.
    if (seenNs.has(w.namespace)) continue;
    seenNs.add(w.namespace);
    const h = held.get(w.namespace) ?? 0;
    if (cap !== undefined && h >= cap) continue;
    const served = lastServed.get(w.namespace) ?? -1;
    if (h < bestHeld || (h === bestHeld && (served < bestServed || (served === bestServed && w.seq < bestSeq)))) {
      best = i;
      bestHeld = h;
      bestServed = served;
      bestSeq = w.seq;
    }
  }
  return best;
}

/** Whether a new request from `namespace` would have to wait (free slots, others waiting, its cap). */
export function mustWait(namespace: string, free: number, waiters: readonly Waiter[], held: ReadonlyMap<string, number>, cap?: number): boolean {
  if (free <= 0) return true;
  if (cap !== undefined && (held.get(namespace) ?? 0) >= cap) return true;
  // Waiters that could take a slot go first (they are older).
  return waiters.some((w) => cap === undefined || (held.get(w.namespace) ?? 0) < cap);
}

/**
 * Namespaces holding more than their fair share while another namespace
 * waits, with how many slots over: the ones a preempting caller would ask to
 * give a slot back (a stream resumes later from its checkpoint).
 */
export function overShare(capacity: number, held: ReadonlyMap<string, number>, waiters: readonly Waiter[], cap?: number): Map<string, number> {
  const out = new Map<string, number>();
  const waitingNs = new Set(waiters.filter((w) => cap === undefined || (held.get(w.namespace) ?? 0) < cap).map((w) => w.namespace));
  if (waitingNs.size === 0) return out;
  const wanting = new Set([...waitingNs, ...[...held].filter(([, n]) => n > 0).map(([ns]) => ns)]);
  const share = fairShare(capacity, wanting.size, cap);
  for (const [ns, n] of held) {
    if (n > share) out.set(ns, n - share);
  }
  return out;
}
