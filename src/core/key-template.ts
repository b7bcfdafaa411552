// Object keys for captured logs. The template is user input; the namespace
// prefix is not: renderKey always puts the LogTail's namespace first so one
// namespace's LogTails cannot write (or overwrite) another namespace's objects.

export const PLACEHOLDERS = ['namespace', 'logtail', 'pod', 'container', 'uid', 'restart', 'date'] as const;
export type Placeholder = (typeof PLACEHOLDERS)[number];

export const DEFAULT_KEY_TEMPLATE = '{logtail}/{pod}-{uid}/{container}-{restart}.log';
export const MAX_KEY_TEMPLATE_LENGTH = 512;
/** S3's limit on a key's UTF-8 length. */
export const MAX_KEY_BYTES = 1024;

export interface KeyVars {
  namespace: string;
  logtail: string;
  pod: string;
  container: string;
  uid: string;
  /** restartCount of the container instance (non-negative integer). */
  restart: number;
  /** Start of the capture (a Date, an RFC 3339 time or yyyy-mm-dd); rendered as its UTC day, yyyy-mm-dd. */
  date: Date | string;
}

export interface RenderOptions {
  compression: 'none' | 'gzip';
}

type Token = { lit: string } | { ph: Placeholder };

const PLACEHOLDER_SET: ReadonlySet<string> = new Set(PLACEHOLDERS);

// Characters a substituted value can consist of after escapeValue. A value's
// extent inside a rendered segment is recoverable when it is bounded by a
// character outside its alphabet (or by the segment's end).
const ESCAPED_VALUE_CHARS = /^[A-Za-z0-9._%-]$/;
const DIGIT = /^[0-9]$/;
const VARYING: Readonly<Partial<Record<Placeholder, RegExp>>> = { container: ESCAPED_VALUE_CHARS, restart: DIGIT };

// Control characters (C0, DEL, C1) are invisible in listings and some S3
// implementations reject them.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

function tokenize(t: string): Token[] | string {
  const out: Token[] = [];
  let lit = '';
  for (let i = 0; i < t.length; i++) {
    const c = t[i] as string;
    if (c === '}') return `unbalanced "}" at position ${i}`;
    if (c !== '{') {
      lit += c;
      continue;
    }
    const close = t.indexOf('}', i + 1);
    const open = t.indexOf('{', i + 1);
    if (close === -1 || (open !== -1 && open < close)) return `unbalanced "{" at position ${i}`;
    const name = t.slice(i + 1, close);
    if (!PLACEHOLDER_SET.has(name)) {
      return `unknown placeholder "{${name}}"; known: ${PLACEHOLDERS.map((p) => `{${p}}`).join(' ')}`;
    }
    if (lit !== '') out.push({ lit });
    lit = '';
    out.push({ ph: name as Placeholder });
    i = close;
  }
  if (lit !== '') out.push({ lit });
  return out;
}

function splitSegments(tokens: Token[]): Token[][] {
  const segs: Token[][] = [[]];
  for (const tok of tokens) {
    if ('ph' in tok) {
      (segs[segs.length - 1] as Token[]).push(tok);
      continue;
    }
    const parts = tok.lit.split('/');
    parts.forEach((p, idx) => {
      if (idx > 0) segs.push([]);
      if (p !== '') (segs[segs.length - 1] as Token[]).push({ lit: p });
    });
  }
  return segs;
}

// Can (container, restart) be read back from a rendered segment whatever the
// values are? Peel tokens off both ends: a varying placeholder is recoverable
// when the neighbour on the peeling side is the segment edge or a literal
// starting (ending) with a character its values cannot contain. Whatever is
// left in the middle is fine if it holds at most one still-unknown variable,
// since its length then follows from the segment's length.
function segmentIsUnambiguous(seg: Token[], known: Set<Placeholder>): boolean {
  let lo = 0;
  let hi = seg.length;
  let progress = true;
  const recoverable = (ph: Placeholder, neighbour: Token | undefined, edgeChar: (s: string) => string): boolean => {
    const alphabet = VARYING[ph];
    if (alphabet === undefined || known.has(ph)) return true;
    if (neighbour === undefined) return true;
    if ('ph' in neighbour) return false;
    return !alphabet.test(edgeChar(neighbour.lit));
  };
  while (progress && lo < hi) {
    progress = false;
    while (lo < hi) {
      const tok = seg[lo] as Token;
      if ('ph' in tok) {
        if (!recoverable(tok.ph, lo + 1 < seg.length ? seg[lo + 1] : undefined, (s) => s[0] as string)) break;
        known.add(tok.ph);
      }
      lo++;
      progress = true;
    }
    while (hi > lo) {
      const tok = seg[hi - 1] as Token;
      if ('ph' in tok) {
        if (!recoverable(tok.ph, hi - 2 >= 0 ? seg[hi - 2] : undefined, (s) => s[s.length - 1] as string)) break;
        known.add(tok.ph);
      }
      hi--;
      progress = true;
    }
  }
  const unknown = new Set<Placeholder>();
  for (let i = lo; i < hi; i++) {
    const tok = seg[i] as Token;
    if ('ph' in tok && VARYING[tok.ph] !== undefined && !known.has(tok.ph)) unknown.add(tok.ph);
  }
  if (unknown.size > 1) return false;
  for (const ph of unknown) known.add(ph);
  return true;
}

/**
 * Returns why `t` is not a usable key template, or undefined when it is.
 * Besides syntax, it requires `{container}` and `{restart}` placed so that
 * keys of different containers or restarts of one LogTail cannot collide.
 */
export function validateKeyTemplate(t: string): string | undefined {
  if (typeof t !== 'string') return 'key template must be a string';
  if (t.length === 0) return 'key template is empty';
  if (t.length > MAX_KEY_TEMPLATE_LENGTH) return `key template is longer than ${MAX_KEY_TEMPLATE_LENGTH} characters`;
  if (CONTROL.test(t)) return 'key template contains a control character';
  if (t.includes('\\')) return 'key template contains a backslash; use "/" to separate folders';
  if (t.startsWith('/')) return 'key template must not start with "/" (keys are relative to the namespace folder)';
  const tokens = tokenize(t);
  if (typeof tokens === 'string') return `key template: ${tokens}`;
  const segments = splitSegments(tokens);
  for (const seg of segments) {
    if (seg.length === 0) return 'key template has an empty path segment ("//" or a trailing "/")';
    if (seg.length === 1) {
      const only = seg[0] as Token;
      if ('lit' in only && (only.lit === '.' || only.lit === '..')) {
        return `key template has a "${only.lit}" path segment`;
      }
    }
  }
  const used = new Set(tokens.flatMap((tok) => ('ph' in tok ? [tok.ph] : [])));
  if (!used.has('container') || !used.has('restart')) {
    return 'key template must contain both {container} and {restart} so that every container instance gets its own key';
  }
  // A value learnt from one segment helps to read another, in any order.
  const known = new Set<Placeholder>();
  let pending = segments;
  for (;;) {
    const before = known.size;
    pending = pending.filter((seg) => !segmentIsUnambiguous(seg, known));
    if (pending.length === 0 || known.size === before) break;
  }
  const seg = pending[0];
  if (seg === undefined) return undefined;
  const text = seg.map((tok) => ('ph' in tok ? `{${tok.ph}}` : tok.lit)).join('');
  return `key template segment "${text}" is ambiguous: separate {container} and {restart} with a character they cannot contain, e.g. "{container}-{restart}" or "{container}/{restart}"`;
}

const SAFE_BYTE = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-') SAFE_BYTE[c.charCodeAt(0)] = 1;

/**
 * Percent-encodes every UTF-8 byte outside [A-Za-z0-9._-] (so "%" itself too,
 * which keeps the encoding injective) and, in a value made only of dots, the
 * dots as well, so that no value can form a "." or ".." path segment.
 */
export function escapeValue(v: string): string {
  const bytes = Buffer.from(v, 'utf8');
  const allDots = bytes.every((b) => b === 0x2e);
  let out = '';
  for (const b of bytes) {
    if (SAFE_BYTE[b] === 1 && !(allDots && b === 0x2e)) out += String.fromCharCode(b);
    else out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

function utcDay(d: Date | string): string {
  const valid = typeof d === 'string' ? /^\d{4}-\d{2}-\d{2}(T|$)/.test(d) : d instanceof Date;
  const date = typeof d === 'string' ? new Date(d) : d;
  if (!valid || Number.isNaN(date.getTime())) throw new Error(`key variable "date" must be a Date or an RFC 3339 date, got ${String(d)}`);
  return date.toISOString().slice(0, 10);
}

/**
 * Renders a key relative to the store root: `<namespace>/<rendered template>`,
 * plus `.gz` under gzip. Throws on an invalid template, an empty value, a
 * restart that is not a non-negative integer, or a key over 1024 bytes.
 */
export function renderKey(t: string, vars: KeyVars, opts: RenderOptions): string {
  const problem = validateKeyTemplate(t);
  if (problem !== undefined) throw new Error(problem);
  if (!Number.isSafeInteger(vars.restart) || vars.restart < 0) {
    throw new Error(`key variable "restart" must be a non-negative integer, got ${vars.restart}`);
  }
  const values: Record<Placeholder, string> = {
    namespace: vars.namespace,
    logtail: vars.logtail,
    pod: vars.pod,
    container: vars.container,
    uid: vars.uid,
    restart: String(vars.restart),
    date: utcDay(vars.date),
  };
  for (const p of PLACEHOLDERS) {
    if (typeof values[p] !== 'string' || values[p] === '') throw new Error(`key variable "${p}" is empty`);
  }
  const tokens = tokenize(t) as Token[];
  let rendered = escapeValue(values.namespace) + '/';
  for (const tok of tokens) rendered += 'ph' in tok ? escapeValue(values[tok.ph]) : tok.lit;
  if (opts.compression === 'gzip') rendered += '.gz';
  // Unreachable given the checks above; kept because a key that escapes its
  // namespace folder would be a cross-tenant write.
  for (const seg of rendered.split('/')) {
    if (seg === '' || seg === '.' || seg === '..') throw new Error(`rendered key "${rendered}" has an unsafe path segment`);
  }
  const size = Buffer.byteLength(rendered, 'utf8');
  if (size > MAX_KEY_BYTES) throw new Error(`rendered key is ${size} bytes, over the ${MAX_KEY_BYTES}-byte limit of object keys`);
  return rendered;
}
