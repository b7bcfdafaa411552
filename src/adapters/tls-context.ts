// One TLS context (OpenSSL SSL_CTX) per set of credentials, shared by every
// connection to the apiserver. Without it each new connection built its own
// from the `ca` / `cert` / `key` that client-node's applyToHTTPSOptions puts
// in the request options (`tls.connect` calls `createSecureContext(options)`
// when no `secureContext` is given): measured with 300 idle TLS streams from
// one process, 102 → 78 KiB of C heap and 160 → 136 KiB of RSS per
// connection (docs/benchmarks.md, "Many captures at once").
import { createHash } from 'node:crypto';
import type { RequestOptions } from 'node:https';
import { createSecureContext, type SecureContext } from 'node:tls';

/** Option names that shape a TLS context; only the first four are shared, any other set leaves the options alone. */
const SHARED = ['ca', 'cert', 'key', 'passphrase'] as const;
const OTHER_CONTEXT_OPTIONS = ['pfx', 'ciphers', 'ecdhCurve', 'dhparam', 'secureProtocol', 'secureOptions', 'minVersion', 'maxVersion', 'crl', 'sigalgs', 'honorCipherOrder', 'sessionIdContext', 'privateKeyEngine', 'privateKeyIdentifier', 'clientCertEngine', 'ticketKeys', 'sessionTimeout'] as const;

/** Credentials change rarely (a rotated client certificate): a few contexts are plenty. */
const MAX_CONTEXTS = 8;
const contexts = new Map<string, SecureContext>();

type Material = string | Buffer | Array<string | Buffer | { pem: string | Buffer; passphrase?: string }> | undefined;

function digest(values: Material[]): string {
  const h = createHash('sha256');
  for (const v of values) {
    const parts = v === undefined ? [] : Array.isArray(v) ? v : [v];
    h.update(`${v === undefined ? 'u' : Array.isArray(v) ? 'a' : 's'}${parts.length};`);
    for (const p of parts) {
      const b = typeof p === 'string' || Buffer.isBuffer(p) ? p : `${String(p.passphrase)}\0${p.pem.toString()}`;
      h.update(`${Buffer.byteLength(b)}:`);
      h.update(b);
    }
  }
  return h.digest('hex');
}

/**
 * Sets `opts.secureContext` to the context shared by all requests with the
 * same CA, client certificate, key and passphrase (by content), unless the
 * options already carry a context or set other context options (then each
 * connection builds its own, as before). Connection-level options
 * (`rejectUnauthorized`, `servername`) are not part of a context and still apply.
 */
export function shareSecureContext(opts: RequestOptions): void {
  const o = opts as Record<string, unknown>;
  if (o.secureContext !== undefined || OTHER_CONTEXT_OPTIONS.some((k) => o[k] !== undefined)) return;
  const values = SHARED.map((k) => o[k] as Material);
  const id = digest(values);
  let ctx = contexts.get(id);
  if (ctx) {
    // most recently used last
    contexts.delete(id);
  } else {
    ctx = createSecureContext(Object.fromEntries(SHARED.filter((k) => o[k] !== undefined).map((k) => [k, o[k]])));
    if (contexts.size >= MAX_CONTEXTS) contexts.delete(contexts.keys().next().value!);
  }
  contexts.set(id, ctx);
  o.secureContext = ctx;
}
