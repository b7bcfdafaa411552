// The error a promise that must fail rejected with, checked to be a
// classified CaptureError (the adapters' only error type).
import { expect } from 'chai';
import { CaptureError } from '../../../src/adapters/errors.ts';

export async function rejection(p: Promise<unknown>): Promise<CaptureError> {
  const got = await p.then(
    () => new Error('expected a rejection'),
    (e: unknown) => e,
  );
  expect(got, String(got)).to.be.instanceOf(CaptureError);
  return got as CaptureError;
}
