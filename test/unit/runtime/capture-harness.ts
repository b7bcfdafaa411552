// Wires a CaptureDaemon to the kubelet model (test/unit/core/kubelet-model.ts),
// an in-memory store and a virtual clock that jumps to the next timer whenever
// nothing else can run, so a whole capture (minutes of back-off and retries)
// runs in milliseconds.
import type { Readable } from 'node:stream';
import { Readable as ReadableStream } from 'node:stream';
import { Gzip } from 'node:zlib';
import { captureError } from '../../../src/adapters/errors.ts';
import type { KubeEvent } from '../../../src/adapters/kube-api.ts';
import type { Checkpointing, CommitMeta, CreateOptions, DurableUpload, ObjectStore, ObjectWriter, UploadFacts } from '../../../src/adapters/store/types.ts';
import { resolveSpec, type LogTail, type LogTailSpec } from '../../../src/core/spec.ts';
import type { LogTailStatus } from '../../../src/core/status.ts';
import { CaptureDaemon, type StopReason } from '../../../src/runtime/capture-daemon.ts';
import type { CaptureClock, DaemonDeps } from '../../../src/runtime/capture-ports.ts';
import { createLogger, silentLogger } from '../../../src/runtime/logger.ts';
import { FairSlots } from '../../../src/runtime/semaphore.ts';
import type { Spool } from '../../../src/runtime/truncating-sink.ts';
import { KubeletModel } from '../core/kubelet-model.ts';
import { settle } from './fake-clock.ts';

interface Timer {
  id: number;
  at: number;
  fn: () => void;
}

/**
 * zlib (gzip members, the continuation's gunzip) runs on libuv's thread pool,
 * outside the virtual clock. Time must not jump while a chunk is being
 * (de)compressed: on a loaded machine (a busy pool) the capture's timers would
 * fire under it (idle timeouts, retry budgets, an hour of virtual time in a
 * second), a different capture from the same seed. Every zlib transform in
 * flight is counted here; runUntil waits for them before it moves time.
 */
const zlibInFlight = new Set<{ stream: { destroyed: boolean } }>();
type ZlibTransform = (this: { destroyed: boolean }, chunk: Buffer, encoding: string, cb: (...args: unknown[]) => void) => void;
const zlibBase = Object.getPrototypeOf(Object.getPrototypeOf(Gzip.prototype) as object) as { _transform: ZlibTransform };
const zlibTransform = zlibBase._transform;
let zlibDelayMs = 0;
zlibBase._transform = function (chunk, encoding, cb) {
  const token = { stream: this };
  zlibInFlight.add(token);
  const run = () =>
    zlibTransform.call(this, chunk, encoding, (...args: unknown[]) => {
      zlibInFlight.delete(token);
      cb(...args);
    });
  if (zlibDelayMs > 0) setTimeout(() => (this.destroyed ? zlibInFlight.delete(token) : run()), zlibDelayMs);
  else run();
};

/** Test hook: every zlib chunk starts `ms` of real time late, as behind a busy thread pool on a loaded machine. */
export function setZlibDelay(ms: number): void {
  zlibDelayMs = ms;
}

/** True while a zlib stream that is not destroyed has a chunk on the thread pool. */
export function zlibBusy(): boolean {
  for (const t of zlibInFlight) {
    if (!t.stream.destroyed) return true;
    zlibInFlight.delete(t);
  }
  return false;
}

/** A clock whose time passes only when every task is waiting on it. */
export class VirtualClock implements CaptureClock {
  private t = Date.parse('2026-11-29T10:00:00Z');
  private seq = 0;
  private timers: Timer[] = [];

  now(): number {
    return this.t;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const timer: Timer = { id: ++this.seq, at: this.t + Math.max(0, ms), fn: () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      } };
      const onAbort = () => {
        this.timers = this.timers.filter((x) => x !== timer);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.timers.push(timer);
    });
  }

  /** Schedules `fn` at `ms` from now (a scripted event). */
  at(ms: number, fn: () => void): void {
    this.timers.push({ id: ++this.seq, at: this.t + ms, fn });
  }

  /** Fires every scheduled timer in order (the scripted past, before the capture starts). */
  fastForward(): void {
    while (this.timers.length > 0) {
      const next = this.timers.reduce((a, b) => (b.at < a.at || (b.at === a.at && b.id < a.id) ? b : a));
      this.timers = this.timers.filter((x) => x !== next);
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
  }

  /** Runs until `p` settles, jumping time forward whenever nothing else runs; throws past `maxMs`. */
  async runUntil<T>(p: Promise<T>, maxMs = 3_600_000): Promise<T> {
    let done = false;
    void p.then(
      () => (done = true),
      () => (done = true),
    );
    const end = this.t + maxMs;
    while (!done) {
      await settle(30);
      for (const waitEnd = Date.now() + 60_000; zlibBusy() && !done; await settle(30)) {
        if (Date.now() > waitEnd) throw new Error('zlib work pending for 60 s of real time');
        await new Promise((r) => setTimeout(r, 1));
      }
      if (done) break;
      const next = this.timers.reduce<Timer | undefined>((a, b) => (!a || b.at < a.at || (b.at === a.at && b.id < a.id) ? b : a), undefined);
      if (!next) throw new Error('deadlock: nothing scheduled and the capture has not finished');
      if (next.at > end) throw new Error(`capture still running after ${maxMs} ms of virtual time`);
      this.timers = this.timers.filter((x) => x !== next);
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
    return p;
  }
}

/** How the memory store makes bytes durable: not at all before commit, S3-like parts, or fsync of a temp file. */
export type StoreMode = 'none' | 'parts' | 'fsync';

/** One unfinished object as the store holds it: only what was made durable survives a crash. */
interface MemUpload {
  key: string;
  /** parts: durable parts by number (1-based; index 0 unused). */
  parts: Buffer[];
  /** fsync: the temp file's bytes (a crash keeps a random part of what was not synced). */
  file: Buffer;
}

/** A process of the operator: once dead (SIGKILL), nothing it does reaches the store or the apiserver. */
export interface Generation {
  dead: boolean;
}

export class MemoryStore implements ObjectStore {
  readonly url = 'mem://bucket';
  readonly objects = new Map<string, Buffer>();
  /** What each commit was given (checksums, lifecycle labels). */
  readonly metas = new Map<string, CommitMeta>();
  /** Unfinished objects (multipart uploads / temp files) in the store. */
  readonly uploads = new Map<string, MemUpload>();
  /** Writers neither committed, aborted nor released, of live processes. */
  open = 0;
  /** Called with each committed object's URI (the harness records it in Capture.requests). */
  onCommit: ((uri: string) => void) | undefined;
  /** Unfinished objects continued by a later process. */
  continued = 0;
  private seq = 0;
  readonly mode: StoreMode;
  readonly partSize: number;
  private readonly rng: () => number;

  constructor(mode: StoreMode = 'none', partSize = 1500, rng: () => number = Math.random) {
    this.mode = mode;
    this.partSize = partSize;
    this.rng = rng;
  }

  /** SIGKILL: what was written and not made durable is lost (a temp file may keep some of it). */
  crash(gen: Generation): void {
    gen.dead = true;
    for (const w of this.live) if (w.gen === gen) w.lose();
  }

  private live = new Set<{ gen: Generation; lose: () => void }>();

  /** The store as one process sees it: once that process is dead, nothing it asks for happens. */
  view(gen: Generation): ObjectStore {
    const dead = () => Promise.reject(captureError('StoreUnavailable', 'the process is dead'));
    return {
      url: this.url,
      create: (key, opts) => (gen.dead ? dead() : this.create(key, opts, gen)),
      inspectUpload: (key, u) => (gen.dead ? dead() : this.inspectUpload(key, u)),
      continueUpload: (key, opts, u) => (gen.dead ? dead() : this.continueUpload(key, opts, u, gen)),
      discardUpload: (key, u) => (gen.dead ? dead() : this.discardUpload(key, u)),
      read: (uri) => this.read(uri),
      head: (uri) => this.head(uri),
      delete: (uri) => (gen.dead ? dead() : this.delete(uri)),
    };
  }

  create(key: string, opts: CreateOptions, gen: Generation = { dead: false }): Promise<ObjectWriter> {
    const id = `u${++this.seq}`;
    if (this.mode !== 'none' && opts.checkpoints) this.uploads.set(id, { key, parts: [], file: Buffer.alloc(0) });
    return Promise.resolve(this.writer(key, id, opts, 0, 0, gen));
  }

  private writer(key: string, id: string, opts: CreateOptions, startParts: number, startBytes: number, gen: Generation): ObjectWriter {
    const uri = `mem://bucket/${key}`;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let parts = startParts;
    let total = startBytes;
    let durableBytes = startBytes;
    let state: 'open' | 'done' = 'open';
    const checkpointed = this.mode !== 'none' && opts.checkpoints === true;
    const entry = { gen, lose: () => undefined as void };
    this.open++;
    this.live.add(entry);
    const finish = () => {
      if (state === 'open') this.open--;
      state = 'done';
      this.live.delete(entry);
    };
    const up = () => this.uploads.get(id);
    entry.lose = () => {
      // A dead process's writer is not open any more; its upload stays in the store.
      finish();
      const u = up();
      if (u && this.mode === 'fsync') {
        // Unsynced bytes may or may not have reached the disk: keep a random prefix of them.
        const rest = Buffer.concat(pending);
        u.file = Buffer.concat([u.file, rest.subarray(0, Math.floor(this.rng() * (rest.length + 1)))]);
      }
      pending = [];
    };
    const alive = () => {
      if (gen.dead) throw captureError('StoreUnavailable', 'the process is dead');
    };
    const cps: Checkpointing | undefined = checkpointed
      ? {
          mode: this.mode === 'parts' ? 'parts' : 'fsync',
          syncHint: () => (this.mode === 'parts' ? (pendingBytes >= this.partSize ? 'now' : 'none') : pendingBytes > 0 ? 'due' : 'none'),
          sync: () => {
            alive();
            const u = up();
            if (!u) return Promise.reject(captureError('StoreUnavailable', `upload ${id} is gone`));
            if (this.mode === 'parts') {
              if (pendingBytes < this.partSize) return Promise.resolve({ durable: Promise.resolve(undefined) });
              parts++;
              u.parts[parts] = Buffer.concat(pending);
            } else {
              u.file = Buffer.concat([u.file, ...pending]);
            }
            pending = [];
            pendingBytes = 0;
            durableBytes = total;
            const d: DurableUpload = { id, objectBytes: durableBytes, ...(this.mode === 'parts' ? { parts } : {}) };
            return Promise.resolve({ durable: Promise.resolve(d) });
          },
          release: () => {
            finish();
            return Promise.resolve();
          },
        }
      : undefined;
    const w: ObjectWriter = {
      uri,
      checkpoints: cps,
      write: (b) => {
        if (gen.dead) return Promise.resolve();
        pending.push(Buffer.from(b));
        pendingBytes += b.length;
        total += b.length;
        return Promise.resolve();
      },
      commit: async (m) => {
        alive();
        if (this.objects.has(uri)) throw captureError('KeyExists', `${key} exists`);
        const u = up();
        let body: Buffer;
        if (!u) body = Buffer.concat(pending);
        else if (this.mode === 'parts') body = Buffer.concat([...u.parts.slice(1, parts + 1), ...pending]);
        else body = Buffer.concat([u.file.subarray(0, durableBytes), ...pending]);
        this.objects.set(uri, body);
        this.onCommit?.(uri);
        this.uploads.delete(id);
        finish();
        this.metas.set(uri, typeof m === 'function' ? await m(uri) : m);
        return { uri, size: body.length };
      },
      abort: () => {
        if (!gen.dead && state === 'open') this.uploads.delete(id);
        finish();
        return Promise.resolve();
      },
    };
    return w;
  }

  inspectUpload(_key: string, u: DurableUpload): Promise<UploadFacts> {
    const x = this.uploads.get(u.id);
    if (!x) return Promise.resolve({ kind: 'gone' });
    if (this.mode === 'parts') return Promise.resolve({ kind: 'parts', parts: x.parts.flatMap((b, n) => (b ? [{ number: n, size: b.length }] : [])) });
    return Promise.resolve({ kind: 'file', size: x.file.length });
  }

  continueUpload(key: string, opts: CreateOptions, u: DurableUpload, gen: Generation = { dead: false }): Promise<ObjectWriter> {
    const x = this.uploads.get(u.id);
    if (!x || x.key !== key) return Promise.reject(captureError('StoreUnavailable', `upload ${u.id} is gone`));
    this.continued++;
    if (this.mode === 'fsync') x.file = x.file.subarray(0, u.objectBytes);
    else x.parts.length = Math.min(x.parts.length, (u.parts ?? 0) + 1);
    return Promise.resolve(this.writer(key, u.id, { ...opts, checkpoints: true }, u.parts ?? 0, u.objectBytes, gen));
  }

  discardUpload(_key: string, u: DurableUpload): Promise<void> {
    this.uploads.delete(u.id);
    return Promise.resolve();
  }

  read(uri: string): Promise<Readable> {
    const b = this.objects.get(uri);
    if (!b) return Promise.reject(captureError('ObjectNotFound', uri));
    return Promise.resolve(ReadableStream.from([b]));
  }
  head(uri: string): Promise<{ size: number } | undefined> {
    const b = this.objects.get(uri);
    return Promise.resolve(b ? { size: b.length } : undefined);
  }
  delete(uri: string): Promise<void> {
    this.objects.delete(uri);
    return Promise.resolve();
  }
}

/**
 * spec.maxBytes scratch space in memory: the virtual clock jumps whenever no
 * promise is runnable, so real file I/O would let time pass under a write.
 * (The file spool is tested in truncating-sink.test.ts.) `open` counts the
 * spools not removed.
 */
export class MemorySpools {
  open = 0;
  readonly openSpool = (): Promise<Spool> => {
    let buf = Buffer.alloc(0);
    let removed = false;
    this.open++;
    return Promise.resolve({
      writeAt: (pos: number, b: Buffer) => {
        if (pos + b.length > buf.length) buf = Buffer.concat([buf, Buffer.alloc(pos + b.length - buf.length)]);
        b.copy(buf, pos);
        return Promise.resolve();
      },
      readAt: (pos: number, len: number) => {
        if (pos + len > buf.length) return Promise.reject(new Error(`short read at ${pos}`));
        return Promise.resolve(Buffer.from(buf.subarray(pos, pos + len)));
      },
      remove: () => {
        if (!removed) this.open--;
        removed = true;
        return Promise.resolve();
      },
    });
  };
}

export interface Capture {
  clock: VirtualClock;
  model: KubeletModel;
  store: MemoryStore;
  spools: MemorySpools;
  daemon: CaptureDaemon;
  /** Every status written, in order. */
  statuses: LogTailStatus[];
  events: KubeEvent[];
  /** Pod reads through the API. */
  podReads: number;
  /**
   * Every request of the capture to the apiserver and the store, in order:
   * `GET pod`, `PATCH status <phase>[ <state of each entry>]`, `POST event <reason>`,
   * `CONNECT log follow|tail|read`, `PUT object`.
   */
  requests: string[];
  status(): LogTailStatus;
  /** Starts the daemon and runs the clock until a daemon finishes (not one stopped by restart()). */
  run(maxMs?: number): Promise<LogTailStatus>;
  /**
   * The operator restarts: the daemon is stopped (its upload aborted) and a
   * new one starts from the last status written, as after a crash.
   */
  restart(): void;
  /**
   * SIGKILL: the daemon's process dies at once (nothing it does afterwards
   * reaches the store or the status; what the store had not made durable is
   * lost) and a new one starts from the last status written.
   */
  crash(): void;
  /** Stops the daemon for good (no new one): run() returns once it has stopped. */
  stop(reason: StopReason): void;
  /** Daemons started so far. */
  launches: number;
  crashes: number;
  /** The stored object of `container` run `restart`. */
  object(container: string, restart: number): Buffer | undefined;
  /**
   * The informer's cache lags (a watch event not delivered yet): until
   * thawInformer(), the daemon's cache shows the pod as it is now; direct
   * reads see the apiserver's current copy.
   */
  freezeInformer(): void;
  thawInformer(): void;
}

/** `patchDelayMs`: each status write takes this long (virtual time) before it is recorded. */
export function makeCapture(opts: { seed?: number; spec?: Partial<LogTailSpec>; podName?: string; slots?: number | ((clock: VirtualClock) => FairSlots); idleTimeoutMs?: number; hold?: DaemonDeps['hold']; storeMode?: StoreMode; partSize?: number; events?: DaemonDeps['events']; patchDelayMs?: number } = {}): Capture {
  const clock = new VirtualClock();
  const model = new KubeletModel(clock, opts.seed ?? 1);
  let rs = (opts.seed ?? 1) * 2654435761;
  const store = new MemoryStore(opts.storeMode ?? 'none', opts.partSize, () => ((rs = (rs * 1103515245 + 12345) % 2147483648) / 2147483648));
  const spools = new MemorySpools();
  const podName = opts.podName ?? 'p';
  const resolved = resolveSpec({ podName, keyTemplate: '{namespace}/{pod}/{container}-{restart}.log', ...opts.spec });
  if (!resolved.ok) throw new Error(resolved.message);
  const lt: LogTail = {
    apiVersion: 'logtail.dev/v1alpha1',
    kind: 'LogTail',
    metadata: { name: 'lt', namespace: 'ns', uid: 'lt-uid-0001', generation: 1, creationTimestamp: new Date(clock.now()) },
    spec: { podName },
  };
  let finish!: () => void;
  const finished = new Promise<void>((r) => (finish = r));
  const lastStatus = () => (cap.statuses.length > 0 ? structuredClone(cap.statuses[cap.statuses.length - 1]) : undefined);
  let gen: Generation = { dead: false };
  let stoppedForGood = false;
  let informer: ((name: string) => ReturnType<KubeletModel['v1pod']>) | undefined;
  const launch = (status?: LogTailStatus) => {
    gen = { dead: false };
    const mine = gen;
    const d = new CaptureDaemon({ ...lt, ...(status ? { status } : {}) }, resolved.spec, {
      ...deps,
      store: store.view(mine),
      api: {
        ...deps.api,
        patchLogTailStatus: (ns, name, st) => (mine.dead ? Promise.resolve() : deps.api.patchLogTailStatus(ns, name, st)),
        createEvent: (ev) => (mine.dead ? Promise.resolve(true) : deps.api.createEvent(ev)),
      },
    });
    cap.daemon = d;
    cap.launches++;
    d.start();
    void d.done.then(() => {
      if (cap.daemon === d && (!d.signal.aborted || stoppedForGood)) finish();
    });
  };
  const cap: Capture = {
    launches: 0,
    restart: () => {
      const old = cap.daemon;
      if (!old || old.signal.aborted) return;
      old.requestStop('OperatorExiting');
      void old.done.then(() => launch(lastStatus()));
    },
    crash: () => {
      const old = cap.daemon;
      if (!old || old.signal.aborted) return;
      store.crash(gen);
      // The dead process's daemon is let run down; nothing it does has effect.
      old.requestStop('Deleted');
      cap.crashes++;
      launch(lastStatus());
    },
    crashes: 0,
    stop: (reason) => {
      stoppedForGood = true;
      cap.daemon.requestStop(reason);
    },
    clock,
    model,
    store,
    spools,
    statuses: [],
    events: [],
    podReads: 0,
    requests: [],
    daemon: undefined as unknown as CaptureDaemon,
    status: () => cap.statuses[cap.statuses.length - 1]!,
    run: async (maxMs) => {
      launch();
      await clock.runUntil(finished, maxMs);
      return cap.status();
    },
    freezeInformer: () => {
      const snap = model.v1pod(podName);
      informer = () => (snap ? structuredClone(snap) : undefined);
    },
    thawInformer: () => {
      informer = undefined;
      cap.daemon?.podChanged();
    },
    object: (container, restart) => {
      const c = cap.status().containers.find((x) => x.name === container && x.restart === restart);
      return c?.object ? store.objects.get(c.object.uri) : undefined;
    },
  };
  const deps: ConstructorParameters<typeof CaptureDaemon>[2] = {
    api: {
      getPod: (_ns, name) => {
        cap.podReads++;
        cap.requests.push('GET pod');
        const err = model.apiFault();
        if (err) return Promise.reject(err);
        return Promise.resolve(model.v1pod(name));
      },
      patchLogTailStatus: async (_ns, _name, status) => {
        const st = structuredClone(status as LogTailStatus);
        cap.requests.push(`PATCH status ${st.phase}${st.containers.map((c) => ` ${c.state}`).join('')}`);
        if (opts.patchDelayMs) await clock.sleep(opts.patchDelayMs);
        cap.statuses.push(st);
      },
      createEvent: (ev) => {
        cap.requests.push(`POST event ${ev.reason}`);
        cap.events.push(ev);
        return Promise.resolve(true);
      },
    },
    logs: {
      open: (req) => {
        cap.requests.push(`CONNECT log ${req.follow ? 'follow' : req.tailLines !== undefined ? 'tail' : 'read'}`);
        return model.open(req);
      },
    },
    store,
    pods: { get: (name) => (informer ? informer(name) : model.v1pod(name)) },
    slots: typeof opts.slots === 'function' ? opts.slots(clock) : new FairSlots(opts.slots ?? 4),
    logger: process.env.CAPTURE_DEBUG ? createLogger({ level: 'debug' }) : silentLogger(),
    idleTimeoutMs: opts.idleTimeoutMs ?? 30_000,
    statusIntervalMs: 2000,
    clock,
    openSpool: spools.openSpool,
    ...(opts.hold ? { hold: opts.hold } : {}),
    ...(opts.events ? { events: opts.events } : {}),
  };
  model.onChange = () => cap.daemon?.podChanged();
  store.onCommit = () => cap.requests.push('PUT object');
  return cap;
}
