// A loopback HTTP proxy in front of s3rver that can inject faults (throttling,
// connection resets before or during a response) and record what it saw.
// It can also emulate UploadPartCopy, which s3rver lacks, by reading the
// source range and uploading it as a part (s3rver accepts unsigned requests).

import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

export type ProxyAction =
  | { kind: 'forward' }
  /** Reply with an S3-style XML error without contacting s3rver. */
  | { kind: 'error'; status: number; code: string; message?: string }
  /** Drop the connection before any response bytes. */
  | { kind: 'reset-before-response' }
  /** Forward, but cut the connection after `afterBytes` body bytes. */
  | { kind: 'reset-mid-body'; afterBytes: number };

export interface S3Proxy {
  endpoint: string;
  seen: SeenRequest[];
  stop(): Promise<void>;
}

export interface S3ProxyOptions {
  /** Decides what to do with each request; `index` counts from 0 over all requests. */
  decide?: (req: SeenRequest, index: number) => ProxyAction;
  emulateUploadPartCopy?: boolean;
}

export async function startS3Proxy(targetEndpoint: string, options: S3ProxyOptions = {}): Promise<S3Proxy> {
  const target = new URL(targetEndpoint);
  const seen: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    const request: SeenRequest = { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers };
    const action = options.decide?.(request, seen.length) ?? { kind: 'forward' };
    seen.push(request);
    handle(req, res, request, action).catch((err: Error) => {
      res.destroy(err);
    });
  });

  async function handle(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    request: SeenRequest,
    action: ProxyAction,
  ): Promise<void> {
    const body = await readAll(req);
    switch (action.kind) {
      case 'error':
        return sendXmlError(res, action.status, action.code, action.message ?? action.code);
      case 'reset-before-response':
        req.socket.destroy();
        return;
      case 'forward':
      case 'reset-mid-body': {
        if (options.emulateUploadPartCopy && isUploadPartCopy(request)) {
          return emulateUploadPartCopy(request, res);
        }
        const upstream = await send(request.method, request.url, forwardHeaders(request.headers), body);
        res.writeHead(upstream.status, responseHeaders(request.method, upstream.headers, upstream.body.length));
        if (action.kind === 'forward') {
          res.end(upstream.body);
          return;
        }
        const cut = Math.min(action.afterBytes, upstream.body.length - 1);
        res.write(upstream.body.subarray(0, cut), () => {
          // Give the bytes a moment to reach the client, then kill the socket.
          setTimeout(() => res.socket?.destroy(), 20);
        });
        return;
      }
    }
  }

  async function emulateUploadPartCopy(request: SeenRequest, res: http.ServerResponse): Promise<void> {
    const source = decodeURIComponent(String(request.headers['x-amz-copy-source'])).replace(/^\//, '');
    const sourcePath = '/' + source.split('/').map(encodeURIComponent).join('/');
    const rangeHeader = request.headers['x-amz-copy-source-range'];
    const got = await send('GET', sourcePath, rangeHeader ? { range: String(rangeHeader) } : {}, Buffer.alloc(0));
    if (got.status >= 300) return sendXmlError(res, got.status, 'NoSuchKey', 'copy source read failed');
    const ifMatch = request.headers['x-amz-copy-source-if-match'];
    if (ifMatch && ifMatch !== got.headers['etag']) {
      return sendXmlError(res, 412, 'PreconditionFailed', 'copy source changed');
    }
    const put = await send('PUT', request.url, { 'content-length': String(got.body.length) }, got.body);
    if (put.status >= 300) return sendXmlError(res, put.status, 'InternalError', 'part upload failed');
    const etag = String(put.headers['etag']);
    const xml =
      '<?xml version="1.0" encoding="UTF-8"?>\n' +
      `<CopyPartResult><LastModified>${new Date().toISOString()}</LastModified><ETag>${escapeXml(etag)}</ETag></CopyPartResult>`;
    res.writeHead(200, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(xml) });
    res.end(xml);
  }

  function send(
    method: string,
    url: string,
    headers: http.OutgoingHttpHeaders,
    body: Buffer,
  ): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const upstream = http.request(
        { host: target.hostname, port: target.port, method, path: url, headers, agent: false },
        async (upstreamRes) => {
          try {
            resolve({ status: upstreamRes.statusCode ?? 502, headers: upstreamRes.headers, body: await readAll(upstreamRes) });
          } catch (err) {
            reject(err);
          }
        },
      );
      upstream.on('error', reject);
      upstream.end(body);
    });
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    seen,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function isUploadPartCopy(request: SeenRequest): boolean {
  return request.method === 'PUT' && request.url.includes('uploadId=') && 'x-amz-copy-source' in request.headers;
}

/** Drops hop-by-hop headers; the proxy already answered any 100-continue itself. */
function forwardHeaders(headers: http.IncomingHttpHeaders): http.OutgoingHttpHeaders {
  const { connection: _c, expect: _e, 'keep-alive': _k, 'transfer-encoding': _t, ...rest } = headers;
  return rest;
}

function responseHeaders(
  method: string,
  headers: http.IncomingHttpHeaders,
  bodyLength: number,
): http.OutgoingHttpHeaders {
  const { connection: _c, 'keep-alive': _k, 'transfer-encoding': _t, ...rest } = headers;
  // HEAD responses describe the object, so their Content-Length must pass through untouched.
  if (method !== 'HEAD') rest['content-length'] = String(bodyLength);
  return rest;
}

function sendXmlError(res: http.ServerResponse, status: number, code: string, message: string): void {
  const xml =
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<Error><Code>${escapeXml(code)}</Code><Message>${escapeXml(message)}</Message><RequestId>proxy</RequestId></Error>`;
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(xml) });
  res.end(xml);
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks);
}
