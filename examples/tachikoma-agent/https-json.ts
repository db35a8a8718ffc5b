/**
 * JSON over https for the example. The client: every call has a deadline and a bounded response,
 * and the TLS identity comes from the `MtlsAgent` (SPIFFE mTLS). The servers: {@link sendJson}
 * and {@link readJsonBody} (bounded, with a deadline).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { request } from 'node:https';
import type { MtlsAgent } from '../../src/http/index.js';

/** A JSON response. */
export interface JsonResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The parsed JSON body, or the text when it is not JSON. */
  readonly body: unknown;
}

/** Options of {@link requestJson}. */
export interface RequestJsonOptions {
  readonly method?: 'GET' | 'POST' | 'PUT' | undefined;
  readonly headers?: Readonly<Record<string, string>> | undefined;
  readonly body?: unknown;
  /** Deadline of the whole exchange, in ms. Default 10 000. */
  readonly timeoutMs?: number | undefined;
}

const MAX_RESPONSE_BYTES = 1024 * 1024;

/** Sends one request through `agent` and resolves with the JSON response. Rejects on transport errors. */
export function requestJson(
  agent: MtlsAgent,
  url: string,
  opts: RequestJsonOptions = {},
): Promise<JsonResponse> {
  const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  const headers: Record<string, string> = { accept: 'application/json', ...opts.headers };
  if (payload !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(Buffer.byteLength(payload));
  }
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: opts.method ?? 'GET', agent, headers, signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000) },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_RESPONSE_BYTES) {
            req.destroy(new Error(`response from ${url} is larger than ${MAX_RESPONSE_BYTES} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          if (String(res.headers['content-type'] ?? '').startsWith('application/json')) {
            try {
              body = JSON.parse(text);
            } catch {
              body = text;
            }
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** Answers with a JSON body (never cached), plus any extra `headers`. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(text));
  res.setHeader('cache-control', 'no-store');
  res.end(text);
}

/** The largest request body {@link readJsonBody} accepts by default, in bytes. */
const MAX_REQUEST_BYTES = 4096;

/**
 * Reads and parses a JSON request body (an empty body is `{}`). Rejects when it is larger than
 * `max` bytes, not JSON, or not complete within 10 s.
 */
export function readJsonBody(req: IncomingMessage, max = MAX_REQUEST_BYTES): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => reject(new Error('body timeout')), 10_000);
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) {
        clearTimeout(timer);
        req.resume();
        reject(new Error('body too large'));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}'));
      } catch {
        reject(new Error('body is not JSON'));
      }
    });
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}
