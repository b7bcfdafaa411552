// The pod annotations that drive the simulator: what each container writes
// (`sim.logtail.dev/script`) and which faults the node injects
// (`sim.logtail.dev/faults`). Parsing is strict — an unknown key is an error —
// because a typo that silently does nothing would make a test prove nothing.
import { STDERR, STDOUT, type StreamId } from './log-store.ts';
import { parseOffset } from './time.ts';

export const SCRIPT_ANNOTATION = 'sim.logtail.dev/script';
export const FAULTS_ANNOTATION = 'sim.logtail.dev/faults';
export const INVALID_REASON = 'InvalidSimScript';

export interface Segment {
  kind: 'generated' | 'text';
  /** generated: number of lines and each line's length including its newline. */
  lines: number;
  lineBytes: number;
  /** text: the bytes written, `repeat` times. */
  text: Buffer;
  repeat: number;
  /** Lines per second; null writes as fast as possible. */
  linesPerSecond: number | null;
  /** Consecutive lines sharing one timestamp. */
  burst: number;
  stream: StreamId;
  /** Every Nth line (N, 2N, …) goes to stderr instead. */
  stderrEvery: number | null;
  pauseSeconds: number;
}

export interface ContainerScript {
  segments: Segment[];
  /** Run k exits with exitCodes[min(k, length - 1)]. */
  exitCodes: number[];
  startDelaySeconds: number;
  /** Seconds the container keeps running after its last line; -1: until the pod is deleted. */
  holdSeconds: number;
  /**
   * The kubelet's initial crash-loop back-off (initialCrashLoopBackOff, 10 s):
   * restart 1 is immediate, restart k ≥ 2 waits restartDelaySeconds × 2^(k-2)
   * from the exit, capped at 300 s (see backoff.ts).
   */
  restartDelaySeconds: number;
  /**
   * How long a state that needs one more pod sync stays visible: `terminated`
   * before an immediate restart, `CrashLoopBackOff` after the back-off ran out
   * (≤ 0.1 s observed on the hollow kubelet; default 0.1).
   */
  syncSeconds: number;
  /** Longest `terminated` is shown before `CrashLoopBackOff` (the kubelet's syncFrequency, default 60 s). */
  resyncSeconds: number;
}

export interface PodScript {
  containers: Map<string, ContainerScript>;
}

export interface Faults {
  tlsAlertSeconds?: number;
  cutEveryBytes?: number;
  terminatedDelaySeconds?: number;
  http500Count?: number;
  deleteAfterSeconds?: number;
  deleteGraceSeconds?: number;
  endStreamAfterBytes?: number;
  stallAfterBytes?: number;
  containerLogMaxSize?: number;
  /** Fixed UTC offset of the runtime's timestamps, in minutes (from `±hh:mm`). */
  timestampOffset?: number;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

class ScriptError extends Error {}

type Json = unknown;

function isObject(v: Json): v is Record<string, Json> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fail(path: string, msg: string): never {
  throw new ScriptError(`${path}: ${msg}`);
}

function checkKeys(obj: Record<string, Json>, allowed: readonly string[], path: string): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) fail(path, `unknown key "${k}" (allowed: ${allowed.join(', ')})`);
  }
}

function int(v: Json, path: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    fail(path, `must be an integer${max === Number.MAX_SAFE_INTEGER ? ` >= ${min}` : ` from ${min} to ${max}`}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function num(v: Json, path: string, min: number, exclusiveMin = false): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || (exclusiveMin && v === min)) {
    fail(path, `must be a number ${exclusiveMin ? '>' : '>='} ${min}, got ${JSON.stringify(v)}`);
  }
  return v;
}

const SEGMENT_KEYS = ['lines', 'lineBytes', 'text', 'textBase64', 'repeat', 'linesPerSecond', 'burst', 'stream', 'stderrEvery', 'pauseSeconds'] as const;
const CONTAINER_KEYS = [...SEGMENT_KEYS, 'segments', 'exitCode', 'exitCodes', 'startDelaySeconds', 'holdSeconds', 'restartDelaySeconds', 'syncSeconds', 'resyncSeconds'] as const;

/**
 * The kubelet's timings: initialCrashLoopBackOff (pkg/kubelet/kubelet.go);
 * the default syncFrequency, 1 min (the hollow kubelet runs the kubelet's
 * default configuration); how long CrashLoopBackOff, or terminated before an
 * immediate restart, stayed visible on the hollow kubelet (≤ 0.1 s).
 */
export const DEFAULT_RESTART_DELAY_SECONDS = 10;
export const DEFAULT_SYNC_SECONDS = 0.1;
export const DEFAULT_RESYNC_SECONDS = 60;

export const DEFAULT_LINE_BYTES = 100;

function parseSegment(o: Record<string, Json>, path: string): Segment {
  const hasLines = o.lines !== undefined;
  const hasText = o.text !== undefined || o.textBase64 !== undefined;
  if (hasLines && hasText) fail(path, 'use either "lines" (generated lines) or "text"/"textBase64", not both');
  if (o.text !== undefined && o.textBase64 !== undefined) fail(path, 'use either "text" or "textBase64", not both');
  if (!hasText && o.repeat !== undefined) fail(path, '"repeat" needs "text" or "textBase64"');
  if (!hasLines && o.lineBytes !== undefined) fail(path, '"lineBytes" needs "lines"');
  let text = Buffer.alloc(0);
  if (o.text !== undefined) {
    if (typeof o.text !== 'string') fail(`${path}.text`, 'must be a string');
    text = Buffer.from(o.text, 'utf8');
  } else if (o.textBase64 !== undefined) {
    if (typeof o.textBase64 !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(o.textBase64)) fail(`${path}.textBase64`, 'must be base64');
    text = Buffer.from(o.textBase64, 'base64');
  }
  let stream: StreamId = STDOUT;
  if (o.stream !== undefined) {
    if (o.stream === 'stderr') stream = STDERR;
    else if (o.stream !== 'stdout') fail(`${path}.stream`, `must be "stdout" or "stderr", got ${JSON.stringify(o.stream)}`);
  }
  return {
    kind: hasText ? 'text' : 'generated',
    lines: hasLines ? int(o.lines, `${path}.lines`, 0) : 0,
    lineBytes: o.lineBytes === undefined ? DEFAULT_LINE_BYTES : int(o.lineBytes, `${path}.lineBytes`, 1),
    text,
    repeat: o.repeat === undefined ? 1 : int(o.repeat, `${path}.repeat`, 0),
    linesPerSecond: o.linesPerSecond === undefined || o.linesPerSecond === null ? null : num(o.linesPerSecond, `${path}.linesPerSecond`, 0, true),
    burst: o.burst === undefined ? 1 : int(o.burst, `${path}.burst`, 1),
    stream,
    stderrEvery: o.stderrEvery === undefined ? null : int(o.stderrEvery, `${path}.stderrEvery`, 1),
    pauseSeconds: o.pauseSeconds === undefined ? 0 : num(o.pauseSeconds, `${path}.pauseSeconds`, 0),
  };
}

function parseContainer(o: Json, path: string): ContainerScript {
  if (!isObject(o)) fail(path, 'must be an object');
  checkKeys(o, CONTAINER_KEYS, path);
  const inline = SEGMENT_KEYS.some((k) => o[k] !== undefined);
  let segments: Segment[] = [];
  if (o.segments !== undefined) {
    const inlineKeys = SEGMENT_KEYS.filter((k) => o[k] !== undefined);
    if (inlineKeys.length > 0) fail(path, `"segments" replaces the line keys; move ${inlineKeys.join(', ')} into a segment`);
    if (!Array.isArray(o.segments)) fail(`${path}.segments`, 'must be an array');
    segments = o.segments.map((s: Json, i: number) => {
      const p = `${path}.segments[${i}]`;
      if (!isObject(s)) fail(p, 'must be an object');
      checkKeys(s, SEGMENT_KEYS, p);
      return parseSegment(s, p);
    });
  } else if (inline) {
    segments = [parseSegment(o, path)];
  }
  if (o.exitCode !== undefined && o.exitCodes !== undefined) fail(path, 'use either "exitCode" or "exitCodes", not both');
  let exitCodes = [0];
  if (o.exitCode !== undefined) exitCodes = [int(o.exitCode, `${path}.exitCode`, 0, 255)];
  if (o.exitCodes !== undefined) {
    if (!Array.isArray(o.exitCodes) || o.exitCodes.length === 0) fail(`${path}.exitCodes`, 'must be a non-empty array of integers');
    exitCodes = o.exitCodes.map((v: Json, i: number) => int(v, `${path}.exitCodes[${i}]`, 0, 255));
  }
  let holdSeconds = 0;
  if (o.holdSeconds !== undefined) {
    holdSeconds = o.holdSeconds === -1 ? -1 : num(o.holdSeconds, `${path}.holdSeconds`, 0);
  }
  return {
    segments,
    exitCodes,
    startDelaySeconds: o.startDelaySeconds === undefined ? 0 : num(o.startDelaySeconds, `${path}.startDelaySeconds`, 0),
    holdSeconds,
    restartDelaySeconds: o.restartDelaySeconds === undefined ? DEFAULT_RESTART_DELAY_SECONDS : num(o.restartDelaySeconds, `${path}.restartDelaySeconds`, 0),
    syncSeconds: o.syncSeconds === undefined ? DEFAULT_SYNC_SECONDS : num(o.syncSeconds, `${path}.syncSeconds`, 0),
    resyncSeconds: o.resyncSeconds === undefined ? DEFAULT_RESYNC_SECONDS : num(o.resyncSeconds, `${path}.resyncSeconds`, 0),
  };
}

/** What a container without a script does: a few lines, then exit 0. */
export function defaultContainerScript(): ContainerScript {
  return {
    segments: [{ kind: 'generated', lines: 3, lineBytes: 64, text: Buffer.alloc(0), repeat: 1, linesPerSecond: null, burst: 1, stream: STDOUT, stderrEvery: null, pauseSeconds: 0 }],
    exitCodes: [0],
    startDelaySeconds: 0,
    holdSeconds: 0,
    restartDelaySeconds: DEFAULT_RESTART_DELAY_SECONDS,
    syncSeconds: DEFAULT_SYNC_SECONDS,
    resyncSeconds: DEFAULT_RESYNC_SECONDS,
  };
}

function parseJson(raw: string, what: string): Json {
  try {
    return JSON.parse(raw) as Json;
  } catch (err) {
    throw new ScriptError(`${what}: not valid JSON: ${(err as Error).message}`);
  }
}

/**
 * Parses the script annotation (undefined: no annotation) for a pod whose
 * containers (init and regular) are `containerNames`. Containers the script
 * does not name get the default script.
 */
export function parseScript(raw: string | undefined, containerNames: readonly string[]): Parsed<PodScript> {
  const containers = new Map<string, ContainerScript>();
  try {
    if (raw !== undefined) {
      const j = parseJson(raw, SCRIPT_ANNOTATION);
      if (!isObject(j)) fail(SCRIPT_ANNOTATION, 'must be a JSON object');
      checkKeys(j, ['containers'], SCRIPT_ANNOTATION);
      if (!isObject(j.containers)) fail(`${SCRIPT_ANNOTATION}: containers`, 'must be an object keyed by container name');
      for (const [name, spec] of Object.entries(j.containers)) {
        if (!containerNames.includes(name)) fail(`${SCRIPT_ANNOTATION}: containers.${name}`, `the pod has no container "${name}" (it has: ${containerNames.join(', ')})`);
        containers.set(name, parseContainer(spec, `${SCRIPT_ANNOTATION}: containers.${name}`));
      }
    }
  } catch (err) {
    if (err instanceof ScriptError) return { ok: false, error: err.message };
    throw err;
  }
  for (const n of containerNames) if (!containers.has(n)) containers.set(n, defaultContainerScript());
  return { ok: true, value: { containers } };
}

const QUANTITY = /^(\d+)(Ki|Mi|Gi|K|M|G)?$/;
const QUANTITY_MULT: Record<string, number> = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, K: 1e3, M: 1e6, G: 1e9 };

function parseSize(v: Json, path: string): number {
  if (typeof v === 'number') return int(v, path, 1);
  if (typeof v === 'string') {
    const m = QUANTITY.exec(v);
    if (m) {
      const n = Number(m[1]) * (m[2] ? QUANTITY_MULT[m[2]]! : 1);
      if (n >= 1) return n;
    }
  }
  fail(path, `must be a positive byte count or a quantity like "10Mi", got ${JSON.stringify(v)}`);
}

const FAULT_KEYS = [
  'tlsAlertSeconds',
  'cutEveryBytes',
  'terminatedDelaySeconds',
  'http500Count',
  'deleteAfterSeconds',
  'deleteGraceSeconds',
  'endStreamAfterBytes',
  'stallAfterBytes',
  'containerLogMaxSize',
  'timestampOffset',
] as const;

/** Parses the faults annotation (on a pod or a node); undefined gives no faults. */
export function parseFaults(raw: string | undefined): Parsed<Faults> {
  if (raw === undefined) return { ok: true, value: {} };
  const p = FAULTS_ANNOTATION;
  try {
    const j = parseJson(raw, p);
    if (!isObject(j)) fail(p, 'must be a JSON object');
    checkKeys(j, FAULT_KEYS, p);
    const f: Faults = {};
    if (j.tlsAlertSeconds !== undefined) f.tlsAlertSeconds = num(j.tlsAlertSeconds, `${p}: tlsAlertSeconds`, 0, true);
    if (j.cutEveryBytes !== undefined) f.cutEveryBytes = int(j.cutEveryBytes, `${p}: cutEveryBytes`, 1);
    if (j.terminatedDelaySeconds !== undefined) f.terminatedDelaySeconds = num(j.terminatedDelaySeconds, `${p}: terminatedDelaySeconds`, 0);
    if (j.http500Count !== undefined) f.http500Count = int(j.http500Count, `${p}: http500Count`, 0);
    if (j.deleteAfterSeconds !== undefined) f.deleteAfterSeconds = num(j.deleteAfterSeconds, `${p}: deleteAfterSeconds`, 0);
    if (j.deleteGraceSeconds !== undefined) {
      if (j.deleteAfterSeconds === undefined) fail(`${p}: deleteGraceSeconds`, 'needs deleteAfterSeconds');
      f.deleteGraceSeconds = int(j.deleteGraceSeconds, `${p}: deleteGraceSeconds`, 0);
    }
    if (j.endStreamAfterBytes !== undefined) f.endStreamAfterBytes = int(j.endStreamAfterBytes, `${p}: endStreamAfterBytes`, 1);
    if (j.stallAfterBytes !== undefined) f.stallAfterBytes = int(j.stallAfterBytes, `${p}: stallAfterBytes`, 0);
    if (j.containerLogMaxSize !== undefined) f.containerLogMaxSize = parseSize(j.containerLogMaxSize, `${p}: containerLogMaxSize`);
    if (j.timestampOffset !== undefined) {
      const off = typeof j.timestampOffset === 'string' ? parseOffset(j.timestampOffset) : null;
      if (off === null) fail(`${p}: timestampOffset`, `must be a UTC offset "+hh:mm" or "-hh:mm" (hh 00-23, mm 00-59), got ${JSON.stringify(j.timestampOffset)}`);
      f.timestampOffset = off;
    }
    return { ok: true, value: f };
  } catch (err) {
    if (err instanceof ScriptError) return { ok: false, error: err.message };
    throw err;
  }
}

/** Node faults apply to every pod on the node; a pod's own keys win. */
export function mergeFaults(node: Faults, pod: Faults): Faults {
  return { ...node, ...pod };
}
