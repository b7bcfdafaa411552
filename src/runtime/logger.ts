// JSON-lines logging for the operator. Other modules depend on the `Logger`
// interface only, so winston stays an implementation detail and tests can pass
// `silentLogger()` or a logger writing into a buffer.
import { Writable } from 'node:stream';
import winston from 'winston';

export type LogMeta = Record<string, unknown>;

export interface Logger {
  error(message: string, meta?: LogMeta): void;
  warn(message: string, meta?: LogMeta): void;
  info(message: string, meta?: LogMeta): void;
  debug(message: string, meta?: LogMeta): void;
  /** A logger whose every line also carries `meta`. */
  child(meta: LogMeta): Logger;
}

export interface LoggerOptions {
  /** error | warn | info | debug. Default: $LOG_LEVEL, else info. */
  level?: string;
  /** Where the JSON lines go. Default: process.stdout. */
  stream?: NodeJS.WritableStream;
  /** Fields on every line (e.g. { component: 'operator' }). */
  defaultMeta?: LogMeta;
}

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

function isLevel(s: string): s is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(s);
}

/**
 * Errors put into meta (`{ err }`) would serialise as `{}`; keep what an
 * operator reading the log needs, including the HTTP status of API errors.
 */
export function serializeError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const out: Record<string, unknown> = { name: err.name, message: err.message };
  const extra = err as Error & { code?: unknown; statusCode?: unknown; cause?: unknown };
  if (extra.code !== undefined) out.code = extra.code;
  if (extra.statusCode !== undefined) out.statusCode = extra.statusCode;
  if (extra.cause !== undefined) out.cause = serializeError(extra.cause);
  if (err.stack) out.stack = err.stack;
  return out;
}

const errorsInMeta = winston.format((info) => {
  for (const key of Object.keys(info)) {
    const v = (info as Record<string, unknown>)[key];
    if (v instanceof Error) (info as Record<string, unknown>)[key] = serializeError(v);
  }
  return info;
});

class WinstonLogger implements Logger {
  readonly #w: winston.Logger;

  constructor(w: winston.Logger) {
    this.#w = w;
  }

  error(message: string, meta?: LogMeta): void {
    this.#w.log('error', message, meta ?? {});
  }

  warn(message: string, meta?: LogMeta): void {
    this.#w.log('warn', message, meta ?? {});
  }

  info(message: string, meta?: LogMeta): void {
    this.#w.log('info', message, meta ?? {});
  }

  debug(message: string, meta?: LogMeta): void {
    this.#w.log('debug', message, meta ?? {});
  }

  child(meta: LogMeta): Logger {
    return new WinstonLogger(this.#w.child(meta));
  }
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const requested = (opts.level ?? process.env.LOG_LEVEL ?? 'info').toLowerCase();
  const level: LogLevel = isLevel(requested) ? requested : 'info';
  const w = winston.createLogger({
    level,
    levels: { error: 0, warn: 1, info: 2, debug: 3 },
    defaultMeta: opts.defaultMeta,
    format: winston.format.combine(errorsInMeta(), winston.format.timestamp(), winston.format.json()),
    transports: [new winston.transports.Stream({ stream: opts.stream ?? process.stdout })],
  });
  const logger = new WinstonLogger(w);
  if (requested !== level) logger.warn('unknown log level; using info', { requested });
  return logger;
}

/** The logger for everything concerning one LogTail: each line names it. */
export function logTailLogger(parent: Logger, ref: { namespace: string; name: string }): Logger {
  return parent.child({ namespace: ref.namespace, name: ref.name });
}

class SilentLogger implements Logger {
  error(): void {}
  warn(): void {}
  info(): void {}
  debug(): void {}
  child(): Logger {
    return this;
  }
}

export function silentLogger(): Logger {
  return new SilentLogger();
}

export interface CapturedLine extends LogMeta {
  level: string;
  message: string;
}

/** A JSON logger writing into memory, for tests that assert on log lines. */
export function memoryLogger(level: LogLevel = 'debug'): { logger: Logger; lines: CapturedLine[] } {
  const lines: CapturedLine[] = [];
  let pending = '';
  const stream = new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      pending += chunk.toString();
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (line.trim()) lines.push(JSON.parse(line) as CapturedLine);
      }
      cb();
    },
  });
  return { logger: createLogger({ level, stream }), lines };
}
