// Byte sizes as Kubernetes writes memory quantities: a plain integer, or an
// integer with a binary (Ki, Mi, Gi, Ti) or decimal (k, K, M, G, T) suffix.
const UNITS: Record<string, number> = { '': 1, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12 };

/** Bytes of a size such as `64Mi` or `1G`; throws on anything else (fractions, negatives, other units). */
export function parseByteSize(text: string): number {
  const m = /^(\d+)(Ki|Mi|Gi|Ti|k|K|M|G|T)?$/.exec(text.trim());
  if (!m) throw new Error(`not a byte size: ${JSON.stringify(text)} (e.g. 67108864, 64Mi, 1Gi)`);
  const n = Number(m[1]) * UNITS[m[2] ?? '']!;
  if (!Number.isSafeInteger(n)) throw new Error(`byte size too large: ${JSON.stringify(text)}`);
  return n;
}
