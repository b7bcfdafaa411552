// Has an ended run been read to its end? Through the apiserver a cut
// connection ends cleanly, so neither a clean end, nor a pass that adds
// nothing, nor a window shorter than asked proves anything: each can be a cut.
//
// The proof used here is a `tailLines=N` window (follow=false) of the ended
// run. The kubelet seeks back N records from the end of the file
// (cri-client pkg/logs/tail.go findTailLineStartIndex) and writes them, a
// timestamp before each line's first record (pkg/logs/logs.go). A response is
// proof that the log ends at our checkpoint when
// - it ends with a newline and its last line is our checkpoint line (same
//   timestamp, same ordinal among lines with that timestamp, same length);
// - it holds at least N records, counted from below: one per line, or
//   ceil(length / 16 KiB) for a longer line (no runtime writes records over
//   16 KiB), so it is the whole window and not a cut prefix of it;
// - it holds a line stamped before the checkpoint's timestamp, so the run of
//   lines sharing the last timestamp is whole and the ordinal can be checked
//   (hence N is larger than that run).
// Anything else is inconclusive, or shows that the log goes on.
//
// An empty log: the kubelet answers through flushwriter
// (pkg/kubelet/server/server.go getContainerLogs), so its 200 leaves with the
// first byte of the body, or, when there is none, only when the handler
// returns after reading the whole file. A connection cut before that is an
// error at the apiserver, never an empty 200: an empty 200 to a window of an
// ended run, with nothing stored, is proof of an empty log.

import { compareTimestamps, isKubeletTimestamp } from '../kubelet-timestamp.ts';

export const RECORD_MAX = 16 * 1024;

export interface DrainCheckpoint {
  time: string;
  ordinal: number;
  /** Content bytes of the checkpoint line emitted, its newline included when complete. */
  offset: number;
  complete: boolean;
}

export interface StoredSoFar {
  checkpoint: DrainCheckpoint | undefined;
  /** Content bytes stored. */
  bytes: number;
  /** Lines stored (newlines emitted). */
  lines: number;
}

export type ProofPlan = { kind: 'window'; tailLines: number } | { kind: 'impossible'; why: string };

/** Which window could prove that the log ends where we are. */
export function proofPlan(s: StoredSoFar): ProofPlan {
  const cp = s.checkpoint;
  if (!cp) {
    if (s.bytes === 0) return { kind: 'window', tailLines: 1 };
    return { kind: 'impossible', why: 'the stored log has no timestamped line to anchor a proof' };
  }
  if (!cp.complete) return { kind: 'impossible', why: 'the log ends inside a line (no final newline): a cut inside that line looks the same' };
  const sameTs = cp.ordinal + 1;
  // The last line may be several records (runtimes split lines at 16 KiB);
  // the other lines sharing its timestamp are counted as one record each (if
  // they are longer, the window misses the older line and stays inconclusive).
  const lastRecords = Math.max(1, Math.ceil(cp.offset / RECORD_MAX));
  if (s.lines > sameTs) return { kind: 'window', tailLines: sameTs - 1 + lastRecords + 1 };
  if (s.lines === 1 && sameTs === 1) return { kind: 'window', tailLines: lastRecords };
  return { kind: 'impossible', why: `all ${s.lines} stored lines carry the same timestamp ${cp.time}: no window can tell their end from a cut` };
}

export type DrainVerdict =
  | { kind: 'drained' }
  /** The window shows lines after our checkpoint: read on. */
  | { kind: 'more'; why: string }
  /** `wider`: a larger window may decide (it did not reach back past the lines sharing the last timestamp). */
  | { kind: 'inconclusive'; why: string; wider?: boolean }
  /**
   * A single stored line ends the window, but so would the last of a burst of
   * identical lines sharing its timestamp: ask `tailLines` (one record more)
   * and judge that window with `confirming`; it must hold the line alone.
   */
  | { kind: 'confirm'; tailLines: number };

interface WindowLine {
  ts: string;
  /** Content bytes, newline included. */
  len: number;
}

function parseWindow(resp: Buffer): WindowLine[] | string {
  const lines: WindowLine[] = [];
  let pos = 0;
  while (pos < resp.length) {
    const nl = resp.indexOf(10, pos);
    const end = nl === -1 ? resp.length : nl + 1;
    // 30 bytes ending in `Z`, or 35 with an offset (`+hh:mm`/`-hh:mm`).
    const tsLen = resp[pos + 29] === 90 ? 30 : 35;
    const ts = resp.toString('latin1', pos, Math.min(pos + tsLen, end));
    if (end - pos < tsLen + 1 || !isKubeletTimestamp(ts) || resp[pos + tsLen] !== 32) return `line at byte ${pos} has no timestamp prefix`;
    lines.push({ ts, len: end - pos - tsLen - 1 });
    pos = end;
  }
  return lines;
}

/** Judges the response to the window `proofPlan` asked for (`confirming`: the window a `confirm` verdict asked for). */
export function judgeWindow(resp: Buffer, s: StoredSoFar, tailLines: number, confirming = false): DrainVerdict {
  const cp = s.checkpoint;
  if (!cp) {
    return resp.length === 0 ? { kind: 'drained' } : { kind: 'more', why: `the window has ${resp.length} bytes, none are stored` };
  }
  const parsed = parseWindow(resp);
  if (typeof parsed === 'string') return { kind: 'inconclusive', why: parsed };
  const last = parsed[parsed.length - 1];
  if (!last) return { kind: 'inconclusive', why: 'the window is empty' };
  const vsCp = compareTimestamps(last.ts, cp.time);
  if (vsCp > 0) return { kind: 'more', why: `the window ends at ${last.ts}, after the checkpoint ${cp.time}` };
  if (resp[resp.length - 1] !== 10) return { kind: 'inconclusive', why: 'the window ends inside a line' };
  let run = 0;
  while (run < parsed.length && compareTimestamps(parsed[parsed.length - 1 - run]!.ts, cp.time) === 0) run++;
  if (vsCp < 0) return { kind: 'inconclusive', why: `the window ends at ${last.ts}, before the checkpoint ${cp.time}` };
  // More lines of that timestamp than stored, counted from the window's end: the log has more.
  if (run > cp.ordinal + 1) return { kind: 'more', why: `the window has ${run} lines stamped ${cp.time}, ${cp.ordinal + 1} are stored` };
  const single = s.lines === 1 && cp.ordinal === 0 && parsed.length === 1;
  if (run === parsed.length && !single) return { kind: 'inconclusive', why: `every line of the window carries the checkpoint's timestamp ${cp.time}`, wider: true };
  if (run < cp.ordinal + 1) return { kind: 'inconclusive', why: `the window has ${run} lines stamped ${cp.time}, ${cp.ordinal + 1} are stored` };
  if (last.len !== cp.offset) return { kind: 'inconclusive', why: `the last line has ${last.len} bytes, ${cp.offset} are stored` };
  let records = 0;
  for (const l of parsed) records += Math.max(1, Math.ceil(l.len / RECORD_MAX));
  // A confirming window of a single-line log holds that line alone, fewer records than asked.
  if (records < tailLines && !(single && confirming)) return { kind: 'inconclusive', why: `the window holds ${parsed.length} lines (at least ${records} records), ${tailLines} were asked: it may be cut` };
  if (single && !confirming) return { kind: 'confirm', tailLines: tailLines + 1 };
  return { kind: 'drained' };
}
