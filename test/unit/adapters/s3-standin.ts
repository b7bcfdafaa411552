// A stand-in S3 server for tests of the operator's start-up store check and
// request options: just enough of the S3 REST API (path-style) for PutObject,
// HeadObject, PutObjectTagging and a multipart upload, with a switch for
// whether it honours `If-None-Match: *` on PutObject and on
// CompleteMultipartUpload. Real S3 servers honour it; some S3-compatible ones
// ignore the header and silently overwrite, which is the condition under test.
import { randomBytes } from 'node:crypto';
import { createServer as createHttp, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttps } from 'node:https';
import type { AddressInfo } from 'node:net';

export interface StandInOptions {
  honourOnPut: boolean;
  honourOnComplete: boolean;
  tls?: { key: Buffer; cert: Buffer };
}

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
}

export interface StandIn {
  endpoint: string;
  requests: RecordedRequest[];
  objects: Map<string, Buffer>;
  /** The next this-many object writes (PutObject, CompleteMultipartUpload) are answered 503 ServiceUnavailable. */
  failWrites: number;
  close(): Promise<void>;
}

function xmlError(res: ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { 'Content-Type': 'application/xml' }).end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`);
}

export async function startStandIn(o: StandInOptions): Promise<StandIn> {
  const objects = new Map<string, Buffer>();
  const uploads = new Map<string, Map<number, Buffer>>();
  const requests: RecordedRequest[] = [];
  const state = { failWrites: 0 };
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
      const u = new URL(req.url ?? '/', 'http://standin');
      const key = decodeURIComponent(u.pathname);
      const body = Buffer.concat(chunks);
      const q = u.searchParams;
      const conditional = req.headers['if-none-match'] === '*';
      if (req.method === 'PUT' && q.has('tagging')) return res.writeHead(200).end();
      const objectWrite = (req.method === 'PUT' && !q.has('partNumber')) || (req.method === 'POST' && q.has('uploadId'));
      if (objectWrite && state.failWrites > 0) {
        state.failWrites--;
        return xmlError(res, 503, 'ServiceUnavailable', 'stand-in: unavailable (failWrites)');
      }
      if (req.method === 'PUT' && q.has('partNumber')) {
        uploads.get(q.get('uploadId') ?? '')?.set(Number(q.get('partNumber')), body);
        return res.writeHead(200, { ETag: `"part-${q.get('partNumber')}"` }).end();
      }
      if (req.method === 'PUT') {
        if (o.honourOnPut && conditional && objects.has(key)) return xmlError(res, 412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
        objects.set(key, body);
        return res.writeHead(200, { ETag: '"etag"' }).end();
      }
      if (req.method === 'POST' && q.has('uploads')) {
        const id = randomBytes(8).toString('hex');
        uploads.set(id, new Map());
        const [bucket, ...rest] = key.slice(1).split('/');
        return res
          .writeHead(200, { 'Content-Type': 'application/xml' })
          .end(`<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult><Bucket>${bucket}</Bucket><Key>${rest.join('/')}</Key><UploadId>${id}</UploadId></InitiateMultipartUploadResult>`);
      }
      if (req.method === 'POST' && q.has('uploadId')) {
        const parts = uploads.get(q.get('uploadId') ?? '');
        if (!parts) return xmlError(res, 404, 'NoSuchUpload', 'no such upload');
        if (o.honourOnComplete && conditional && objects.has(key)) return xmlError(res, 412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold');
        objects.set(key, Buffer.concat([...parts.entries()].sort((a, b) => a[0] - b[0]).map(([, b]) => b)));
        uploads.delete(q.get('uploadId') ?? '');
        return res.writeHead(200, { 'Content-Type': 'application/xml' }).end(`<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUploadResult><Key>${key}</Key><ETag>"mp"</ETag></CompleteMultipartUploadResult>`);
      }
      if (req.method === 'DELETE' && q.has('uploadId')) {
        uploads.delete(q.get('uploadId') ?? '');
        return res.writeHead(204).end();
      }
      if (req.method === 'HEAD') {
        const obj = objects.get(key);
        if (!obj) return res.writeHead(404).end();
        return res.writeHead(200, { 'Content-Length': String(obj.length), ETag: '"etag"' }).end();
      }
      return xmlError(res, 501, 'NotImplemented', `${req.method} ${req.url} is not part of the stand-in`);
    });
  };
  const server: Server = o.tls ? (createHttps({ key: o.tls.key, cert: o.tls.cert }, handler) as unknown as Server) : createHttp(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `${o.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    requests,
    objects,
    get failWrites() {
      return state.failWrites;
    },
    set failWrites(n: number) {
      state.failWrites = n;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}
