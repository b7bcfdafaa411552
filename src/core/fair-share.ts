// Fair share of the stream slots between namespaces (issue 11 item 3), as
// pure decisions over counts; src/runtime/semaphore.ts (FairSlots) keeps the
// state and calls these.
//
// Policy: max-min fairness. A free slot goes to the waiting namespace that
// holds the fewest slots (ties: the one served longest ago, then the one whose
// oldest waiter came first: round robin), to its oldest waiter; a namespace at
// its cap (optional, --max-streams-per-namespace) gets none. Nobody else
// waiting: a namespace may use every free slot (no slot idles). When others
// come, a namespace over its share gives slots back (planPreemption): the
// share is capacity ÷ namespaces with demand rounded down, the remainder one
// slot each to namespaces already holding it (at most fairShare()), never
// more than its cap.

export interface Waiter {
  namespace: string;
  /** Arrival order; smaller came first. */
  seq: number;
}

/** The most slots a namespace holds in the fair state when `wanting` namespaces (holders and waiters together) share `capacity`: ceil(capacity / wanting), or its cap. */
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

/** A slot held through a lease (src/runtime/semaphore.ts SlotLease): one that preemption may ask back. */
export interface Holder {
  id: number;
  namespace: string;
  /** When this hold began (ms). */
  since: number;
  /** Following a running container: it can stop at once and resume from its checkpoint. */
  preemptible: boolean;
  /** Already asked to give its slot back (counted as given). */
  asked: boolean;
}

export interface PreemptionPlan {
  /** Holders to ask for their slot now, in order. */
  ask: number[];
  /** When a slot that is over the share but held less than the minimum becomes askable (ms); undefined: none waits on that. */
  recheckAt?: number;
}

/**
 * Which slots to ask back so that no namespace holds more than its fair share
 * while another waits. `held` counts every slot each namespace holds (leases
 * or not); `holders` are the ones that may be asked. The share: capacity ÷
 * namespaces with demand, rounded down, the remainder one slot each to
 * namespaces already holding it, so a namespace is over its share while
 * another waits exactly when it holds 2 or more slots more than that waiting
 * namespace (which the grant order then serves first). Asked slots count as
 * given to the waiters the grant order would serve. A namespace's waiters
 * count only below its cap. Within a namespace the slot held longest goes
 * first; a slot held less than `minHoldMs`, or not preemptible, is not asked.
 */
export function planPreemption(o: {
  capacity: number;
  held: ReadonlyMap<string, number>;
  holders: readonly Holder[];
  waiters: readonly Waiter[];
  cap?: number;
  now: number;
  minHoldMs: number;
}): PreemptionPlan {
  const held = new Map(o.held);
  const demand = new Map<string, number>();
  for (const w of o.waiters) demand.set(w.namespace, (demand.get(w.namespace) ?? 0) + 1);
  const count = (ns: string) => held.get(ns) ?? 0;
  let free = o.capacity - [...held.values()].reduce((a, b) => a + b, 0);
  for (const h of o.holders) {
    if (!h.asked) continue;
    held.set(h.namespace, count(h.namespace) - 1);
    free++;
  }
  /** The waiting namespace the next free slot goes to (fewest held; below its cap). */
  const neediest = (): string | undefined => {
    let best: string | undefined;
    for (const [ns, n] of demand) {
      if (n <= 0 || (o.cap !== undefined && count(ns) >= o.cap)) continue;
      if (best === undefined || count(ns) < count(best)) best = ns;
    }
    return best;
  };
  const give = (ns: string) => {
    held.set(ns, count(ns) + 1);
    demand.set(ns, demand.get(ns)! - 1);
  };
  for (let w = neediest(); free > 0 && w !== undefined; w = neediest()) {
    give(w);
    free--;
  }
  const candidates = o.holders.filter((h) => !h.asked && h.preemptible).sort((a, b) => a.since - b.since || a.id - b.id);
  const ask: number[] = [];
  let recheckAt: number | undefined;
  for (let w = neediest(); w !== undefined; w = neediest()) {
    const floor = count(w) + 2;
    const over = [...held].filter(([, n]) => n >= floor).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    let taken: Holder | undefined;
    for (const [ns] of over) {
      const mine = candidates.filter((h) => h.namespace === ns && !ask.includes(h.id));
      taken = mine.find((h) => o.now - h.since >= o.minHoldMs);
      if (taken) break;
      for (const h of mine) recheckAt = Math.min(recheckAt ?? Infinity, h.since + o.minHoldMs);
    }
    if (!taken) break;
    ask.push(taken.id);
    held.set(taken.namespace, count(taken.namespace) - 1);
    give(w);
  }
  return recheckAt === undefined ? { ask } : { ask, recheckAt };
}
