// What a capture daemon needs from the outside world, as interfaces: the
// operator wires them to the apiserver, the store and the system clock; the
// unit tests wire them to a kubelet model and a fake clock.
import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import type { KubeEvent } from '../adapters/kube-api.ts';
import type { LogStream, LogStreamRequest } from '../adapters/log-stream.ts';
import { sleep as systemSleep } from '../adapters/retry.ts';
import type { ObjectStore } from '../adapters/store/types.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';
import type { FairSlots, Semaphore } from './semaphore.ts';
import type { OpenSpool } from './truncating-sink.ts';
import type { PodFinalizerApi } from './pod-hold.ts';
import type { StatusWriter } from './status-writer.ts';

/** The informer's view of pods (may lag). */
export interface PodSource {
  get(name: string, namespace: string): V1Pod | undefined;
}

/** The Kubernetes API calls a capture makes. `KubeApi` implements it. */
export interface CaptureApi {
  /** A direct read; undefined when the pod does not exist. Throws on other failures. */
  getPod(namespace: string, name: string): Promise<V1Pod | undefined>;
  patchLogTailStatus(namespace: string, name: string, status: unknown): Promise<void>;
  createEvent(ev: KubeEvent): Promise<boolean>;
}

/** Opens `pods/log` requests. */
export interface LogSource {
  open(req: LogStreamRequest): Promise<LogStream>;
}

export interface CaptureClock {
  now(): number;
  /** Rejects with `signal.reason` when the signal aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemCaptureClock: CaptureClock = { now: () => Date.now(), sleep: systemSleep };

export interface DaemonDeps {
  api: CaptureApi;
  logs: LogSource;
  store: ObjectStore;
  pods: PodSource;
  slots: FairSlots;
  logger: Logger;
  metrics?: Metrics;
  idleTimeoutMs: number;
  statusIntervalMs: number;
  /** The process-wide status writer; without one, the daemon writes through `api` with no budget. */
  statusWriter?: StatusWriter;
  /**
   * Events of every capture in flight at once (process-wide; absent: no
   * bound). Events are reports: at the end of many captures at once they must
   * not take the apiserver's connections and time from pod reads and status
   * writes; each capture's terminal event comes after its terminal status anyway.
   */
  events?: Semaphore;
  clock?: CaptureClock;
  /** Scratch space for the tails of spec.maxBytes captures: files in --spool-dir (fileSpool); default: the OS temporary directory's logtail-spool. */
  openSpool?: OpenSpool;
  /** spec.holdPod: the pod patches and whether --enable-hold-pod is set. Absent: holds are not permitted. */
  hold?: { api: PodFinalizerApi; enabled: boolean };
}

export function containerStatus(pod: V1Pod, name: string): V1ContainerStatus | undefined {
  return [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])].find((s) => s.name === name);
}

export function podTerminal(pod: V1Pod): boolean {
  return pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
}
