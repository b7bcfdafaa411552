// Whether an object an earlier process left unfinished can be continued, from
// the checkpoint in status (status.containers[].upload) and what the store
// says about the upload now. Pure: the runtime gathers the facts
// (ListParts, stat of the temp file) and acts on the verdict.
import { type UploadCheckpoint, UPLOAD_FORMAT } from '../status.ts';
import { isKubeletTimestamp } from '../kubelet-timestamp.ts';

/** What the store holds of an upload now. */
export type UploadFacts =
  /** S3: NoSuchUpload (completed, aborted, or expired by a lifecycle rule); file store: no temp file. */
  | { kind: 'gone' }
  /** S3: the upload's parts as ListParts returns them. */
  | { kind: 'parts'; parts: { number: number; size: number }[] }
  /** File store: the temp file and its length. */
  | { kind: 'file'; size: number };

export interface ContinuationInput {
  /** status.containers[].upload as read back (any shape: the status is input). */
  record: unknown;
  /** Container ID of the run the capture is about to read. */
  runId: string;
  /** undefined when the record was not even looked up in the store (format or run refused first). */
  facts?: UploadFacts;
}

export type ContinuationVerdict =
  /** Continue: append after `objectBytes`; S3 parts above `parts` (and file bytes past objectBytes) are not ours to keep. */
  | { kind: 'continue'; record: UploadCheckpoint }
  /**
   * Not continuable: say why (`reason`, `message`), remove what is left in
   * the store when `discard` (the upload/temp file is ours and useless), and
   * read the run again from the top.
   */
  | { kind: 'reread'; reason: ContinuationReason; message: string; discard: boolean }
  /** Ask the store first (the record is well-formed and names this run). */
  | { kind: 'inspect'; record: UploadCheckpoint };

export type ContinuationReason = 'CheckpointFormat' | 'RunChanged' | 'UploadGone' | 'PartsMismatch' | 'TempFileShort';

const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;

/** The record, if it is one this code wrote (UPLOAD_FORMAT, every field in range); else why not. */
export function parseUploadRecord(x: unknown): UploadCheckpoint | string {
  if (typeof x !== 'object' || x === null) return 'not an object';
  const r = x as Partial<UploadCheckpoint>;
  if (r.format !== UPLOAD_FORMAT) return `format ${String(r.format)}, this operator continues format ${UPLOAD_FORMAT}`;
  if (typeof r.id !== 'string' || r.id.length === 0) return 'no upload id';
  if (typeof r.containerID !== 'string') return 'no container ID';
  if (!isCount(r.objectBytes) || !isCount(r.bytes) || !isCount(r.lines)) return 'byte or line counts out of range';
  if (r.parts !== undefined && (!isCount(r.parts) || r.parts === 0)) return 'part count out of range';
  if (r.malformedLines !== undefined && !isCount(r.malformedLines)) return 'malformedLines out of range';
  const cp = r.checkpoint;
  if (!cp || !isKubeletTimestamp(cp.time) || !isCount(cp.ordinal) || !isCount(cp.offset)) return 'no valid resume point';
  if (r.gap !== undefined && typeof r.gap !== 'string') return 'gap is not a string';
  return r as UploadCheckpoint;
}

/**
 * The decision, in two steps: without facts it says whether the store needs
 * asking at all (`inspect`) or the record is refused on its own; with facts,
 * continue or re-read.
 */
export function judgeContinuation(i: ContinuationInput): ContinuationVerdict {
  const parsed = parseUploadRecord(i.record);
  if (typeof parsed === 'string') {
    // Not ours to interpret: leave whatever it names alone.
    return { kind: 'reread', reason: 'CheckpointFormat', message: `the checkpoint an earlier process left cannot be continued (${parsed})`, discard: false };
  }
  const r = parsed;
  if (r.containerID !== i.runId) {
    return { kind: 'reread', reason: 'RunChanged', message: `the checkpoint is of container ${r.containerID || '(none)'}, the run is now ${i.runId}`, discard: true };
  }
  const f = i.facts;
  if (!f) return { kind: 'inspect', record: r };
  if (f.kind === 'gone') {
    return { kind: 'reread', reason: 'UploadGone', message: `the unfinished object ${r.parts !== undefined ? `(multipart upload ${r.id})` : `(temp file ${r.id})`} is no longer in the store`, discard: false };
  }
  if (r.parts !== undefined) {
    if (f.kind !== 'parts') return { kind: 'reread', reason: 'PartsMismatch', message: 'the checkpoint names a multipart upload, the store has none', discard: false };
    return judgeParts(r, f.parts);
  }
  if (f.kind !== 'file') return { kind: 'reread', reason: 'TempFileShort', message: 'the checkpoint names a temp file, the store has none', discard: false };
  if (f.size < r.objectBytes) {
    return { kind: 'reread', reason: 'TempFileShort', message: `temp file ${r.id} holds ${f.size} bytes, ${r.objectBytes} were durable`, discard: true };
  }
  return { kind: 'continue', record: r };
}

function judgeParts(r: UploadCheckpoint, listed: { number: number; size: number }[]): ContinuationVerdict {
  const n = r.parts!;
  const byNumber = new Map(listed.map((p) => [p.number, p.size]));
  let sum = 0;
  for (let k = 1; k <= n; k++) {
    const size = byNumber.get(k);
    if (size === undefined) return { kind: 'reread', reason: 'PartsMismatch', message: `multipart upload ${r.id} lacks part ${k} of the ${n} that were durable`, discard: true };
    sum += size;
  }
  if (sum !== r.objectBytes) {
    return { kind: 'reread', reason: 'PartsMismatch', message: `parts 1-${n} of multipart upload ${r.id} hold ${sum} bytes, ${r.objectBytes} were durable`, discard: true };
  }
  return { kind: 'continue', record: r };
}
