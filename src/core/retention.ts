// spec.retention: what happens to the stored objects when a LogTail goes.
// Pure decisions; the controller deletes.
import type { LogTail } from './spec.ts';
import type { ContainerCapture } from './status.ts';

export function retentionOf(lt: Pick<LogTail, 'spec'>): 'Retain' | 'Delete' {
  return lt.spec?.retention === 'Delete' ? 'Delete' : 'Retain';
}

/**
 * Whether a finished LogTail keeps its finalizer: with retention Delete it
 * must, so that deleting it (by a user, its TTL or its policy's garbage
 * collection) waits for its objects to be deleted.
 */
export function keepFinalizerWhenFinished(lt: Pick<LogTail, 'spec'>): boolean {
  return retentionOf(lt) === 'Delete';
}

/** The objects to delete before the finalizer goes: every stored object in the status, once each. */
export function objectsToDelete(lt: Pick<LogTail, 'spec' | 'status'>): string[] {
  if (retentionOf(lt) !== 'Delete') return [];
  const uris = ((lt.status?.containers ?? []) as ContainerCapture[]).map((c) => c.object?.uri).filter((u): u is string => !!u);
  return [...new Set(uris)];
}
