// An error the kubelet sends as the body of a 200 response.
//
// pkg/kubelet/kubelet_pods.go GetKubeletContainerLogs makes a zero-byte write
// to stdout (a flushwriter, so the 200 header leaves) before it asks the
// runtime; when pkg/kubelet/kuberuntime/kuberuntime_container.go
// GetContainerLogs then fails, pkg/kubelet/server/server.go getContainerLogs
// calls response.WriteError, whose status is ignored (the header is gone): the
// error text is appended to the 200 body, without a newline or a timestamp.
// For a container the kubelet's GC has removed (it keeps one dead container
// per container by default, so run k-1 goes when run k ends) that text is
// `unable to retrieve container logs for <containerID>` (kuberuntime
// GetContainerLogs, when ContainerStatus fails). A follow stream whose
// container is removed while it is read (the pod deleted) ends the same way
// with the runtime's text (k8s.io/cri-client pkg/logs/logs.go ReadLogs:
// isContainerRunning fails with NotFound, e.g. `rpc error: code = NotFound
// desc = container "<id>" not found`; the wording is the runtime's).
//
// A log requested with timestamps=true has a valid kubelet timestamp prefix
// (core/kubelet-timestamp.ts) at the start of every line it serves after a
// newline; the only prefix-less bytes are later chunks of a long line (never
// right after a newline) and the start of a response that begins mid-line.
// So bytes after the last newline that do not begin with a valid prefix when
// the response ends are the kubelet's error text, never log content,
// whatever its wording. Pure: the bytes after a newline are held back until
// they form a valid prefix (at most PREFIX_MAX_LEN bytes: then released), a
// newline follows (a malformed line: released, the resume filter counts it)
// or the response ends (dropped and reported). At the start of a response
// only the exact removed-container text is recognised.

import { PREFIX_MAX_LEN, heldPrefixLength, prefixByteFits, validTimestampAt } from '../kubelet-timestamp.ts';

/** What the kubelet appends when it cannot find the container (kuberuntime GetContainerLogs). */
export function removedContainerText(containerID: string): Buffer {
  return Buffer.from(`unable to retrieve container logs for ${containerID}`, 'latin1');
}

/** Bytes after a newline that cannot start a line, held back before they are released as content anyway. */
export const ERROR_TEXT_MAX = 64 * 1024;

export interface ErrorTailEnd {
  /** The response ended with the removed-container text, right after a newline or as its whole body. */
  matched: boolean;
  /** Bytes held back that turned out to be something else (a cut inside a prefix): forward them. */
  rest: Buffer;
  /** Bytes after the last newline without a timestamp prefix: the kubelet's error text, not forwarded (empty if none). */
  dropped: Buffer;
  /** Bytes forwarded before the end. */
  forwarded: number;
}

const EMPTY = Buffer.alloc(0);

type Mode =
  /** The start of the response: held while it can be the removed-container text. */
  | 'start'
  /** After a newline: held while it can be a timestamp prefix. */
  | 'line'
  /** After a newline, not a prefix: held until a newline or the end. */
  | 'bad'
  /** Inside a line that began well: passed through. */
  | 'mid';

/** Holds back a trailing kubelet error text of a streamed response; everything else passes through unchanged and in order. */
export class ErrorTail {
  private readonly text: Buffer | undefined;
  private mode: Mode = 'start';
  /** Held bytes of earlier chunks (a copy: the caller may reuse a chunk once forwarded). */
  private carry: Buffer = EMPTY;
  /** The prefix candidate after the last newline, and its length. */
  private readonly pre = Buffer.alloc(PREFIX_MAX_LEN);
  private preLen = 0;
  /** Bytes matched against `text` in 'start' mode. */
  private startLen = 0;
  private forwarded = 0;

  /** `text`: the exact removed-container text, recognised also as a whole body (undefined: none). */
  constructor(text?: Buffer) {
    this.text = text;
    if (!text) this.mode = 'mid';
  }

  /** The bytes of this chunk (and of earlier held ones) that can be forwarded now, in order. */
  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    const n = chunk.length;
    let p = 0;
    let from = 0;
    const release = (): void => {
      if (this.carry.length > 0) out.push(this.carry);
      if (p > from) out.push(chunk.subarray(from, p));
      this.carry = EMPTY;
      from = p;
    };
    while (p < n) {
      if (this.mode === 'mid') {
        const nl = chunk.lastIndexOf(10);
        if (nl < p) p = n;
        else {
          p = nl + 1;
          release();
          this.lineStarts();
        }
      } else if (this.mode === 'line') {
        p = this.scanPrefix(chunk, p);
      } else if (this.mode === 'bad') {
        const nl = chunk.indexOf(10, p);
        if (nl < 0) p = n;
        else {
          p = nl + 1;
          release();
          this.lineStarts();
        }
      } else {
        const text = this.text as Buffer;
        if (this.startLen < text.length && chunk[p] === text[this.startLen]) {
          this.startLen++;
          p++;
        } else this.mode = 'mid';
      }
    }
    if (this.mode === 'mid') release();
    else if (from < n) {
      this.carry = Buffer.concat([this.carry, chunk.subarray(from, n)]);
      from = n;
    }
    if (this.mode === 'bad' && this.carry.length > ERROR_TEXT_MAX) {
      release();
      this.mode = 'mid';
    }
    for (const b of out) this.forwarded += b.length;
    return out;
  }

  private lineStarts(): void {
    this.mode = 'line';
    this.preLen = 0;
  }

  /** Consumes bytes of a prefix candidate from `p`; returns where it stopped. */
  private scanPrefix(chunk: Buffer, p: number): number {
    const n = chunk.length;
    while (p < n) {
      const b = chunk[p] as number;
      if (!prefixByteFits(this.preLen, b, this.pre)) {
        this.mode = 'bad';
        return p;
      }
      this.pre[this.preLen++] = b;
      p++;
      if (this.preLen === heldPrefixLength(this.pre, this.preLen)) {
        this.mode = validTimestampAt(this.pre, 0, this.preLen - 1) ? 'mid' : 'bad';
        return p;
      }
    }
    return p;
  }

  /** The response ended cleanly: what was held back. */
  end(): ErrorTailEnd {
    const held = this.carry;
    this.carry = EMPTY;
    const forwarded = this.forwarded;
    const matched = (this.mode === 'start' || this.mode === 'bad') && this.text !== undefined && held.equals(this.text);
    const mode = this.mode;
    this.mode = 'mid';
    if (matched) return { matched, rest: EMPTY, dropped: held, forwarded };
    if (mode === 'bad' && held.length > 0) return { matched, rest: EMPTY, dropped: held, forwarded };
    return { matched, rest: held, dropped: EMPTY, forwarded };
  }
}

export type ResponseError =
  | { kind: 'none' }
  /** The whole body is the removed-container text: nothing of the log was served. */
  | { kind: 'whole' }
  /** The removed-container text trails `contentBytes` bytes of real log, which end with a newline. */
  | { kind: 'trailing'; contentBytes: number }
  /** Other error text (`text`) trails `contentBytes` bytes of real log, which end with a newline. */
  | { kind: 'text'; contentBytes: number; text: string };

/** Whether a whole response body is, or ends with, kubelet error text (`text`: the removed-container text, if known). */
export function responseError(body: Buffer, text?: Buffer): ResponseError {
  const g = new ErrorTail(text);
  g.push(body);
  const e = g.end();
  if (e.matched) return e.forwarded === 0 ? { kind: 'whole' } : { kind: 'trailing', contentBytes: e.forwarded };
  if (e.dropped.length > 0) return { kind: 'text', contentBytes: e.forwarded, text: e.dropped.toString('latin1') };
  return { kind: 'none' };
}
