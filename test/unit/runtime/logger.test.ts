import { expect } from 'chai';
import { Writable } from 'node:stream';
import { createLogger, logTailLogger, memoryLogger, silentLogger } from '../../../src/runtime/logger.ts';
import { settle } from './fake-clock.ts';

function sink(): { stream: Writable; lines: () => Array<Record<string, unknown>> } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  return {
    stream,
    lines: () =>
      text
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('runtime/logger', () => {
  it('writes one JSON object per line with level, message, timestamp and meta', async () => {
    const s = sink();
    const log = createLogger({ level: 'info', stream: s.stream });
    log.info('hello', { a: 1 });
    log.debug('hidden');
    await settle();
    const lines = s.lines();
    expect(lines.length).to.equal(1);
    expect(lines[0]).to.include({ level: 'info', message: 'hello', a: 1 });
    expect(String(lines[0]?.timestamp)).to.match(/^\d{4}-\d\d-\d\dT/);
  });

  it('puts namespace and name of the LogTail on every line of its child logger', async () => {
    const { logger, lines } = memoryLogger();
    const lt = logTailLogger(logger, { namespace: 'team-a', name: 'job-logs' });
    lt.info('started');
    lt.child({ container: 'main' }).warn('stream broke', { attempt: 2 });
    lt.error('failed');
    await settle();
    expect(lines.length).to.equal(3);
    for (const l of lines) expect(l).to.include({ namespace: 'team-a', name: 'job-logs' });
    expect(lines[1]).to.include({ container: 'main', attempt: 2, level: 'warn' });
  });

  it('takes its level from LOG_LEVEL', async () => {
    const before = process.env.LOG_LEVEL;
    process.env.LOG_LEVEL = 'debug';
    try {
      const s = sink();
      createLogger({ stream: s.stream }).debug('visible');
      await settle();
      expect(s.lines().map((l) => l.message)).to.deep.equal(['visible']);
      process.env.LOG_LEVEL = 'warn';
      const s2 = sink();
      createLogger({ stream: s2.stream }).info('hidden');
      await settle();
      expect(s2.lines()).to.deep.equal([]);
    } finally {
      if (before === undefined) delete process.env.LOG_LEVEL;
      else process.env.LOG_LEVEL = before;
    }
  });

  it('serialises errors in meta with their message and status code', async () => {
    const { logger, lines } = memoryLogger();
    const err = Object.assign(new Error('Gone'), { statusCode: 410 });
    logger.error('watch failed', { err });
    await settle();
    const e = lines[0]?.err as Record<string, unknown>;
    expect(e).to.include({ message: 'Gone', statusCode: 410, name: 'Error' });
  });

  it('silentLogger accepts everything and prints nothing', () => {
    const l = silentLogger();
    l.info('x');
    l.child({ a: 1 }).error('y', { err: new Error('z') });
  });
});
