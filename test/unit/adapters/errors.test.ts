import { expect } from 'chai';
import { CaptureError, captureError, classifyHttpStatus, isTransient, parseRetryAfter } from '../../../src/adapters/errors.ts';

describe('adapters/errors', () => {
  it('captureError derives kind from reason, with an override; the constructor takes it explicitly', () => {
    expect(captureError('StreamStalled', 'x').kind).to.equal('transient');
    expect(captureError('KeyExists', 'x').kind).to.equal('permanent');
    expect(captureError('StoreDenied', 'x').kind).to.equal('permanent');
    expect(captureError('StoreUnavailable', 'x').kind).to.equal('transient');
    expect(captureError('PodNotFound', 'x').kind).to.equal('permanent');
    expect(captureError('ServerError', 'x', { kind: 'permanent' }).kind).to.equal('permanent');
    const cause = new Error('inner');
    const e = new CaptureError('ServerError', 'permanent', 'outer', { status: 503, cause });
    expect([e.reason, e.kind, e.message, e.status, e.transient]).to.deep.equal(['ServerError', 'permanent', 'outer', 503, false]);
    expect(e.cause).to.equal(cause);
    expect(e).to.be.instanceOf(Error);
    expect(e.name).to.equal('CaptureError');
  });

  it('classifies apiserver answers', () => {
    const cases: Array<[number, string, string, 'transient' | 'permanent']> = [
      [401, 'Unauthorized', 'Forbidden', 'permanent'],
      [403, 'pods "p" is forbidden: User "u" cannot get resource "pods/log"', 'Forbidden', 'permanent'],
      [404, 'pods "p" not found', 'PodNotFound', 'permanent'],
      [400, 'container "c" in pod "p" is waiting to start: ContainerCreating', 'WaitingToStart', 'transient'],
      [400, 'container x is not valid for pod p', 'ContainerNotFound', 'permanent'],
      [400, 'container "x" is not valid for pod "p"', 'ContainerNotFound', 'permanent'],
      [400, 'a container name must be specified for pod p', 'BadRequest', 'permanent'],
      [429, 'Too many requests', 'TooManyRequests', 'transient'],
      [500, 'etcdserver: request timed out', 'ServerError', 'transient'],
      [503, '', 'ServerError', 'transient'],
      [
        500,
        'Get "https://127.0.0.1:10250/containerLogs/ns/p/c?follow=true": remote error: tls: internal error',
        'KubeletUnreachable',
        'transient',
      ],
      [500, 'Get "https://10.0.0.5:10250/containerLogs/ns/p/c": dial tcp 10.0.0.5:10250: connect: connection refused', 'KubeletUnreachable', 'transient'],
      [409, 'conflict', 'BadRequest', 'permanent'],
    ];
    for (const [status, msg, reason, kind] of cases) {
      const e = classifyHttpStatus(status, msg);
      expect([e.reason, e.kind, e.status], `${status} ${msg}`).to.deep.equal([reason, kind, status]);
    }
    expect(classifyHttpStatus(503, '').message).to.equal('HTTP 503');
  });

  it('isTransient: CaptureError kind, network codes (also in the cause chain), everything else permanent', () => {
    expect(isTransient(captureError('ServerError', 'x'))).to.equal(true);
    expect(isTransient(captureError('Forbidden', 'x'))).to.equal(false);
    for (const code of ['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT']) {
      expect(isTransient(Object.assign(new Error(code), { code })), code).to.equal(true);
    }
    expect(isTransient(new TypeError('fetch failed', { cause: Object.assign(new Error('x'), { code: 'UND_ERR_SOCKET' }) }))).to.equal(true);
    expect(isTransient(Object.assign(new Error('x'), { code: 'ENOENT' }))).to.equal(false);
    expect(isTransient(new Error('x'))).to.equal(false);
    expect(isTransient('string')).to.equal(false);
    expect(isTransient(undefined)).to.equal(false);
    const abort = Object.assign(new Error('aborted', { cause: Object.assign(new Error(), { code: 'ECONNRESET' }) }), { name: 'AbortError' });
    expect(isTransient(abort)).to.equal(false);
    const cyclic: { code?: string; cause?: unknown } = {};
    cyclic.cause = cyclic;
    expect(isTransient(cyclic)).to.equal(false);
  });

  it('parses Retry-After seconds', () => {
    expect(parseRetryAfter('3')).to.equal(3000);
    expect(parseRetryAfter(['1'])).to.equal(1000);
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:28:00 GMT')).to.equal(undefined);
    expect(parseRetryAfter(undefined)).to.equal(undefined);
  });
});
