// Sharding (issue 11 item 7): which replica owns a LogTail. Pure decisions,
// no I/O; the runtime (src/runtime/sharding.ts) observes the Leases and the
// LogTail, asks these functions, and acts.
//
// - Assignment: rendezvous (highest random weight) hashing of the LogTail's
//   UID over the live members: every replica that sees the same members
//   picks the same one, and a member joining or leaving moves only the
//   LogTails it wins or held (about 1/N of them).
// - Ownership is not the hash: it is the claim recorded on the LogTail
//   (annotation OWNER_ANNOTATION), written with optimistic concurrency. The
//   hash only says who should take an unowned LogTail and when an owner must
//   hand one over, so replicas that briefly disagree about the members never
//   both capture.
import { createHash } from 'node:crypto';
import { type Phase, isTerminalPhase } from './status.ts';

/** The replica that owns a LogTail (its shard id). */
export const OWNER_ANNOTATION = 'logtail.dev/owner';
/**
 * The owner's term when it claimed: a replica starts a new term (its Lease's
 * leaseTransitions + 1, or a new Lease with a new UID) each time it
 * (re)acquires its Lease, at start-up and after it fenced itself. A claim is alive only in the term it was made in, so
 * a replica that lost its Lease never resumes old claims: it claims again like
 * anyone else, guarded by resourceVersion.
 */
export const OWNER_TERM_ANNOTATION = 'logtail.dev/owner-term';
/** When that claim was written (RFC 3339), for people reading the object. */
export const OWNER_SINCE_ANNOTATION = 'logtail.dev/owner-since';
/** Annotation on a member's Lease naming the member, kept when it releases the Lease (holder cleared). */
export const SHARD_ID_ANNOTATION = 'logtail.dev/shard-id';
/** Label on every shard member's Lease; the value is the shard group (the operator's lease id). */
export const SHARD_GROUP_LABEL = 'logtail.dev/shard-group';

/** A member's weight for a key: the first 8 bytes of sha256(member NUL key), big-endian. */
export function rendezvousScore(member: string, key: string): bigint {
  return createHash('sha256').update(member).update('\0').update(key).digest().readBigUInt64BE(0);
}

/** The member with the highest weight for `key` (ties: the smaller name); undefined without members. */
export function rendezvousOwner(key: string, members: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestScore = -1n;
  for (const m of members) {
    const s = rendezvousScore(m, key);
    if (s > bestScore || (s === bestScore && best !== undefined && m < best)) {
      best = m;
      bestScore = s;
    }
  }
  return best;
}

/** How a replica sees another member's Lease. */
export type MemberState = 'live' | 'dead' | 'unknown';

/**
 * A member's Lease as this replica has observed it. `observedAt` is the local
 * time this replica first saw the Lease's current content: a Lease is live
 * for its duration from then, measured on this replica's clock (the holder's
 * renewTime is never compared with our clock). A Lease with no holder was
 * released by a replica that has stopped. A member with no Lease is `unknown`
 * until it has been missing for a whole lease duration (it may have created
 * its Lease after our last list), then `dead`.
 */
export interface ObservedLease {
  holder: string;
  durationMs: number;
  observedAt: number;
  /** The member's current term (its Lease's UID and leaseTransitions, see runtime/sharding.ts leaseTermOf). */
  term: string;
}

/**
 * `term`: the term a claim names (undefined: any). A live Lease in another
 * term means the claim's holder has since lost and re-acquired its Lease: the
 * claim is dead.
 */
export function memberState(lease: ObservedLease | undefined, missingSince: number | undefined, leaseDurationMs: number, now: number, term?: string): MemberState {
  if (lease) {
    if (lease.holder === '') return 'dead';
    if (term !== undefined && lease.term !== term) return 'dead';
    return now < lease.observedAt + lease.durationMs ? 'live' : 'dead';
  }
  if (missingSince === undefined) return 'unknown';
  return now >= missingSince + leaseDurationMs ? 'dead' : 'unknown';
}

/**
 * Whether a LogTail needs an owner at all: a terminal LogTail whose finalizer
 * is gone and which has no ttlSecondsAfterFinished needs nobody (so finished
 * LogTails are not moved around when members change).
 */
export function needsOwner(lt: { metadata?: { finalizers?: string[]; deletionTimestamp?: unknown }; spec?: { ttlSecondsAfterFinished?: number | null }; status?: { phase?: string } }, finalizer: string): boolean {
  const hasFinalizer = (lt.metadata?.finalizers ?? []).includes(finalizer);
  if (hasFinalizer) return true;
  if (lt.metadata?.deletionTimestamp) return false;
  if (!isTerminalPhase(lt.status?.phase as Phase | undefined)) return true;
  const ttl = lt.spec?.ttlSecondsAfterFinished;
  return ttl !== undefined && ttl !== null;
}

export interface ClaimInput {
  /** This replica's shard id. */
  me: string;
  /** This replica renewed its own Lease recently enough to act (within the renew deadline). */
  meLive: boolean;
  /** The LogTail's UID (the hash key). */
  uid: string;
  /** The recorded owner; undefined or '' when unowned (never claimed, or released). */
  owner: string | undefined;
  /** The term the claim was made in (OWNER_TERM_ANNOTATION); undefined when absent. */
  ownerTerm: string | undefined;
  /** This replica's current term. */
  myTerm: string;
  /** How this replica sees the recorded owner in the claim's term (ignored when the owner is me or unset). */
  ownerState: MemberState;
  /** Members whose Lease is live in this replica's view (me included when meLive). */
  live: readonly string[];
  /** needsOwner() of the LogTail. */
  needsOwner: boolean;
}

export type ClaimDecision =
  /** I own it: reconcile it as a single operator would. */
  | { kind: 'work' }
  /** Write my claim, guarded by the resourceVersion I read. */
  | { kind: 'claim'; from?: string }
  /** I own it but the hash now picks `to`: stop the capture (ShardMoved), then clear my claim. */
  | { kind: 'release'; to: string }
  /** Not mine: leave it alone (stop any capture of it I still run). */
  | { kind: 'leave'; why: 'owned-elsewhere' | 'assigned-elsewhere' | 'no-owner-needed' | 'not-live' }
  /** My own Lease is not fresh: start nothing new, look again later. */
  | { kind: 'wait' };

export function decideClaim(i: ClaimInput): ClaimDecision {
  const owner = i.owner ?? '';
  // My claim counts only in my current term; one from an earlier term of mine is as dead as any other.
  const mine = owner === i.me && i.ownerTerm === i.myTerm;
  if (!i.meLive) return mine ? { kind: 'wait' } : { kind: 'leave', why: 'not-live' };
  const members = i.live.includes(i.me) ? i.live : [...i.live, i.me];
  const desired = rendezvousOwner(i.uid, members)!;
  if (mine) {
    if (!i.needsOwner || desired === i.me) return { kind: 'work' };
    return { kind: 'release', to: desired };
  }
  if (owner !== '' && owner !== i.me && i.ownerState !== 'dead') return { kind: 'leave', why: 'owned-elsewhere' };
  if (!i.needsOwner) return { kind: 'leave', why: 'no-owner-needed' };
  if (desired !== i.me) return { kind: 'leave', why: 'assigned-elsewhere' };
  return owner === '' ? { kind: 'claim' } : { kind: 'claim', from: owner };
}

/** A Lease name for a member: `<group>-shard-<id>`, lower-cased to a DNS subdomain. */
export function memberLeaseName(group: string, id: string): string {
  const clean = `${group}-shard-${id}`.toLowerCase().replace(/[^a-z0-9.-]+/g, '-').replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '');
  return clean.slice(0, 253).replace(/[^a-z0-9]+$/, '');
}
