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
// GetContainerLogs, when ContainerStatus fails).
//
// A log requested with timestamps=true has a timestamp at the start of every
// line, so such text can only be a whole body, or trail the last complete
// line. Pure: the bytes after the last newline that can still be that text
// are held back until the response ends.

/** What the kubelet appends when it cannot find the container (kuberuntime GetContainerLogs). */
export function removedContainerText(containerID: string): Buffer {
  return Buffer.from(`unable to retrieve container logs for ${containerID}`, 'latin1');
}

export interface ErrorTailEnd {
  /** The response ended with `text`, right after a newline or as its whole body. */
  matched: boolean;
  /** Bytes held back that turned out to be something else: forward them. */
  rest: Buffer;
  /** Bytes forwarded before the end (0 with `matched`: the text was the whole body). */
  forwarded: number;
}

/** Holds back a trailing `text` of a streamed response; everything else passes through unchanged and in order. */
export class ErrorTail {
  private readonly text: Buffer;
  /** Bytes after the last newline (or the start), a prefix of `text`, not forwarded yet. */
  private held: Buffer = Buffer.alloc(0);
  /** The next byte starts a line (the start of the response, or after a newline). */
  private lineStart = true;
  private forwarded = 0;

  constructor(text: Buffer) {
    this.text = text;
  }

  /** The bytes of this chunk (and of earlier held ones) that can be forwarded now, in order. */
  push(chunk: Buffer): Buffer[] {
    if (chunk.length === 0) return [];
    const L = this.text.length;
    // Only the last L+1 bytes can hold the newline a candidate follows.
    let nl = -1;
    for (let i = chunk.length - 1; i >= Math.max(0, chunk.length - L - 1); i--) {
      if (chunk[i] === 10) {
        nl = i;
        break;
      }
    }
    const out: Buffer[] = this.held.length > 0 ? [this.held] : [];
    let candidate: Buffer;
    let head: Buffer;
    if (nl >= 0) {
      head = chunk.subarray(0, nl + 1);
      candidate = chunk.subarray(nl + 1);
      this.held = Buffer.alloc(0);
    } else if (this.lineStart && this.held.length + chunk.length <= L) {
      head = Buffer.alloc(0);
      candidate = Buffer.concat([...out, chunk]);
      out.length = 0;
      this.held = Buffer.alloc(0);
    } else {
      head = chunk;
      candidate = Buffer.alloc(0);
      this.held = Buffer.alloc(0);
      this.lineStart = false;
    }
    if (head.length > 0) out.push(head);
    if (candidate.length > 0 && candidate.length <= L && this.text.subarray(0, candidate.length).equals(candidate)) {
      // A copy: the caller may reuse the chunk's memory once it has been forwarded.
      this.held = Buffer.from(candidate);
      this.lineStart = true;
    } else if (candidate.length > 0) {
      out.push(candidate);
      this.lineStart = false;
    } else if (nl >= 0) {
      this.lineStart = true;
    }
    for (const b of out) this.forwarded += b.length;
    return out;
  }

  /** The response ended cleanly: was it the text? */
  end(): ErrorTailEnd {
    const matched = this.held.equals(this.text);
    const rest = matched ? Buffer.alloc(0) : this.held;
    this.held = Buffer.alloc(0);
    return { matched, rest, forwarded: this.forwarded };
  }
}

export type ResponseError =
  | { kind: 'none' }
  /** The whole body is the text: nothing of the log was served. */
  | { kind: 'whole' }
  /** The text trails `contentBytes` bytes of real log, which end with a newline. */
  | { kind: 'trailing'; contentBytes: number };

/** Whether a whole response body is, or ends with, `text` after its last newline. */
export function responseError(body: Buffer, text: Buffer): ResponseError {
  const g = new ErrorTail(text);
  g.push(body);
  const e = g.end();
  if (!e.matched) return { kind: 'none' };
  return e.forwarded === 0 ? { kind: 'whole' } : { kind: 'trailing', contentBytes: e.forwarded };
}
