// The per-connection stream faults (cutEveryBytes, stallAfterBytes,
// endStreamAfterBytes) applied to a log response body. One implementation,
// used by the node simulator (bytes from its log store) and by the kubelet
// fault proxy (bytes from a real kubelet's response), so a fault means the
// same thing on both kinds of node.
import type { ServerResponse } from 'node:http';
import type { Faults } from './script.ts';

export type FaultAction = 'cut' | 'stall' | 'end';

export interface StreamFault {
  at: number;
  action: FaultAction;
}

/** The fault that fires first on a connection (the smallest byte count), or null. */
export function firstFault(f: Faults): StreamFault | null {
  const c: StreamFault[] = [];
  if (f.cutEveryBytes !== undefined) c.push({ at: f.cutEveryBytes, action: 'cut' });
  if (f.stallAfterBytes !== undefined) c.push({ at: f.stallAfterBytes, action: 'stall' });
  if (f.endStreamAfterBytes !== undefined) c.push({ at: f.endStreamAfterBytes, action: 'end' });
  if (c.length === 0) return null;
  c.sort((a, b) => a.at - b.at);
  return c[0]!;
}

/**
 * Where the body bytes come from. `next` returns the next piece, or null at
 * the end of the log; it may wait for more bytes, and must give up (return
 * null) once `closed` resolves. It throws if the source broke off.
 */
export interface ByteSource {
  next(closed: Promise<void>): Promise<Buffer | null>;
}

function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

function write(res: ServerResponse, buf: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const ok = res.write(buf, () => resolve(ok));
  });
}

/**
 * Sends the source's bytes as the response body (status and headers are the
 * caller's), applying the first fault: after `at` body bytes a cut destroys
 * the socket (the bytes before it are flushed first), a stall sends nothing
 * more and leaves the connection open, an end finishes the response cleanly.
 * Without a fault the body is passed through and ended.
 * Resolves with what happened: 'done', 'closed' (the client went away) or the fault's action.
 */
export async function sendWithFaults(source: ByteSource, fault: StreamFault | null, res: ServerResponse): Promise<'done' | 'closed' | FaultAction> {
  let closed = false;
  const closedP = new Promise<void>((r) =>
    res.once('close', () => {
      closed = true;
      r();
    }),
  );
  res.on('error', () => undefined);
  let sent = 0;
  for (;;) {
    if (closed) return 'closed';
    if (fault && sent >= fault.at) {
      if (fault.action === 'stall') return 'stall'; // no bytes, no FIN: the client has to give up
      if (fault.action === 'end') res.end();
      // cut: the bytes written so far are on their way; then drop the connection.
      else res.socket?.destroy();
      return fault.action;
    }
    let buf: Buffer | null;
    try {
      buf = await source.next(closedP);
    } catch {
      // The source broke off (e.g. the kubelet dropped its connection): so do we.
      res.socket?.destroy();
      return 'closed';
    }
    if (closed) return 'closed';
    if (buf === null) break;
    const piece = fault && sent + buf.length > fault.at ? buf.subarray(0, fault.at - sent) : buf;
    if (piece.length === 0) continue;
    sent += piece.length;
    const flushed = write(res, piece);
    if (res.writableNeedDrain) await Promise.race([drained(res), closedP]);
    // A cut must not drop the bytes it promised: wait until they left.
    if (fault && sent >= fault.at) await Promise.race([flushed, closedP]);
  }
  if (!closed) res.end();
  return 'done';
}
