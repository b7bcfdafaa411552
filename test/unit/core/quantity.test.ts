import { expect } from 'chai';
import { parseByteSize } from '../../../src/core/quantity.ts';

describe('core/quantity parseByteSize', () => {
  const cases: Array<[string, number]> = [
    ['0', 0],
    ['4096', 4096],
    ['64Mi', 64 * 1024 * 1024],
    ['1Gi', 1024 ** 3],
    ['512Ki', 512 * 1024],
    ['2Ti', 2 * 1024 ** 4],
    ['1k', 1000],
    ['1K', 1000],
    ['100M', 100e6],
    ['3G', 3e9],
    [' 8Mi ', 8 * 1024 * 1024],
  ];
  for (const [text, bytes] of cases) {
    it(`${JSON.stringify(text)} = ${bytes}`, () => expect(parseByteSize(text)).to.equal(bytes));
  }
  for (const bad of ['', 'Mi', '1.5Mi', '-1', '64MB', '64mi', '1e6', '64 Mi', '99999999999999Ti']) {
    it(`refuses ${JSON.stringify(bad)}`, () => expect(() => parseByteSize(bad)).to.throw());
  }
});
