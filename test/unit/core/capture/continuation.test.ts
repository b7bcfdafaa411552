import { expect } from 'chai';
import { type ContinuationInput, judgeContinuation, parseUploadRecord } from '../../../../src/core/capture/continuation.ts';
import { UPLOAD_FORMAT, type UploadCheckpoint } from '../../../../src/core/status.ts';

const ID = 'containerd://' + 'a'.repeat(64);
const cp = { time: '2026-11-29T10:00:01.000000000Z', ordinal: 0, offset: 12 };
const s3: UploadCheckpoint = { format: UPLOAD_FORMAT, id: 'upload-1', containerID: ID, parts: 2, objectBytes: 300, bytes: 300, lines: 20, checkpoint: cp };
const file: UploadCheckpoint = { format: UPLOAD_FORMAT, id: '.main-0.log.0123456789ab.tmp', containerID: ID, objectBytes: 300, bytes: 290, lines: 20, checkpoint: cp };
const parts = (...sizes: number[]) => ({ kind: 'parts' as const, parts: sizes.map((size, i) => ({ number: i + 1, size })) });

describe('core/capture/continuation', () => {
  const table: [string, ContinuationInput, Record<string, unknown>][] = [
    // Step one: the record alone.
    ['a well-formed S3 record of this run: ask the store', { record: s3, runId: ID }, { kind: 'inspect' }],
    ['a well-formed file record of this run: ask the store', { record: file, runId: ID }, { kind: 'inspect' }],
    ['an older format: reported, nothing removed', { record: { ...s3, format: 0 }, runId: ID }, { kind: 'reread', reason: 'CheckpointFormat', discard: false }],
    ['a newer format: reported, nothing removed', { record: { ...s3, format: UPLOAD_FORMAT + 1 }, runId: ID }, { kind: 'reread', reason: 'CheckpointFormat', discard: false }],
    ['not an object', { record: 'x', runId: ID }, { kind: 'reread', reason: 'CheckpointFormat', discard: false }],
    ['no resume point', { record: { ...s3, checkpoint: undefined }, runId: ID }, { kind: 'reread', reason: 'CheckpointFormat' }],
    ['a resume point that is not a kubelet timestamp', { record: { ...s3, checkpoint: { ...cp, time: '2026-11-29' } }, runId: ID }, { kind: 'reread', reason: 'CheckpointFormat' }],
    ['negative bytes', { record: { ...s3, objectBytes: -1 }, runId: ID }, { kind: 'reread', reason: 'CheckpointFormat' }],
    ['zero parts', { record: { ...s3, parts: 0 }, runId: ID }, { kind: 'reread', reason: 'CheckpointFormat' }],
    ['another run of the container: removed, read again', { record: s3, runId: 'containerd://' + 'b'.repeat(64) }, { kind: 'reread', reason: 'RunChanged', discard: true }],
    // Step two: with the store's facts.
    ['S3: exactly the durable parts', { record: s3, runId: ID, facts: parts(200, 100) }, { kind: 'continue' }],
    ['S3: more parts than durable (uploaded after the checkpoint): continue, they are replaced', { record: s3, runId: ID, facts: parts(200, 100, 50) }, { kind: 'continue' }],
    ['S3: upload gone (completed, aborted, expired)', { record: s3, runId: ID, facts: { kind: 'gone' } }, { kind: 'reread', reason: 'UploadGone', discard: false }],
    ['S3: a durable part missing', { record: s3, runId: ID, facts: { kind: 'parts', parts: [{ number: 2, size: 100 }] } }, { kind: 'reread', reason: 'PartsMismatch', discard: true }],
    ['S3: a part of another size', { record: s3, runId: ID, facts: parts(200, 99) }, { kind: 'reread', reason: 'PartsMismatch', discard: true }],
    ['S3: no parts at all', { record: s3, runId: ID, facts: parts() }, { kind: 'reread', reason: 'PartsMismatch', discard: true }],
    ['S3 record, file facts', { record: s3, runId: ID, facts: { kind: 'file', size: 300 } }, { kind: 'reread', reason: 'PartsMismatch' }],
    ['file: exactly as long', { record: file, runId: ID, facts: { kind: 'file', size: 300 } }, { kind: 'continue' }],
    ['file: longer (written after the checkpoint): continue, cut to it', { record: file, runId: ID, facts: { kind: 'file', size: 4000 } }, { kind: 'continue' }],
    ['file: shorter than durable', { record: file, runId: ID, facts: { kind: 'file', size: 299 } }, { kind: 'reread', reason: 'TempFileShort', discard: true }],
    ['file: gone', { record: file, runId: ID, facts: { kind: 'gone' } }, { kind: 'reread', reason: 'UploadGone', discard: false }],
    ['file record, S3 facts', { record: file, runId: ID, facts: parts(300) }, { kind: 'reread', reason: 'TempFileShort' }],
  ];
  for (const [what, input, want] of table) {
    it(what, () => {
      const v = judgeContinuation(input) as unknown as Record<string, unknown>;
      for (const [k, x] of Object.entries(want)) expect(v[k], `${what}: ${k} (${JSON.stringify(v)})`).to.equal(x);
      if (v.kind === 'reread') expect(v.message).to.be.a('string').and.not.equal('');
    });
  }

  it('parseUploadRecord returns the record itself when it is valid', () => {
    expect(parseUploadRecord(s3)).to.equal(s3);
    expect(parseUploadRecord({ ...file, gap: 7 })).to.be.a('string');
  });
});
