import { createHmac, randomBytes } from 'node:crypto';
import { Agent, request, type Dispatcher } from 'undici';
import { computeSign, type SignableValue, type SignType } from '../shared/signing.ts';
import type { OrderEventPayload } from './order-event.ts';
import { parseRetryAfter, type AttemptVerdict } from './retry-policy.ts';
import { guardedConnector } from './ssrf-guard.ts';

export const USER_AGENT = 'payment-callback-service/0.1 (merchant-notifications; +https://github.com/)';
const EXCERPT_BYTES = 1024;

export interface DeliverySettings {
  secret: string;
  signType: SignType;
  timeoutMs: number;
  expectBody: string | null;
  allowPrivateNetworks: boolean;
}

export interface AttemptResult {
  verdict: AttemptVerdict;
  statusCode: number | null;
  error: string | null;
  excerpt: string | null;
  durationMs: number;
}

/** Nonces come from a pooled random buffer: one randomBytes call per 340 deliveries instead of one each. */
const NONCE_BYTES = 12;
let noncePool = Buffer.alloc(0);
let nonceOffset = 0;
function nextNonce(): string {
  if (nonceOffset + NONCE_BYTES > noncePool.length) {
    noncePool = randomBytes(NONCE_BYTES * 340);
    nonceOffset = 0;
  }
  nonceOffset += NONCE_BYTES;
  return noncePool.toString('hex', nonceOffset - NONCE_BYTES, nonceOffset);
}

/** The Standard Webhooks key is the secret's base64 part; decoded once per secret, not per delivery. */
let webhookKey: { secret: string; key: Buffer } | undefined;
function webhookKeyOf(secret: string): Buffer {
  if (webhookKey?.secret !== secret) webhookKey = { secret, key: Buffer.from(secret.slice('whsec_'.length), 'base64') };
  return webhookKey.key;
}

/** The signed fields with keys already in sorted order: computeSign's byte-order sort then barely compares. */
function sortedForSigning(fields: Record<string, SignableValue>): Record<string, SignableValue> {
  const sorted: Record<string, SignableValue> = {};
  for (const key of Object.keys(fields).sort()) sorted[key] = fields[key];
  return sorted;
}

/** The A7 body (event fields + timestamp, nonce, sign_type, sign) and its Standard Webhooks headers. */
export function signedDelivery(payload: OrderEventPayload, settings: Pick<DeliverySettings, 'secret' | 'signType'>, now: Date) {
  const timestamp = Math.floor(now.getTime() / 1000);
  const unsigned = { ...payload, timestamp, nonce: nextNonce(), sign_type: settings.signType };
  const body = JSON.stringify({ ...unsigned, sign: computeSign(sortedForSigning(unsigned), settings.secret, settings.signType) });
  const signature = createHmac('sha256', webhookKeyOf(settings.secret)).update(`${payload.event_id}.${timestamp}.${body}`).digest('base64');
  const headers = {
    'content-type': 'application/json',
    'user-agent': USER_AGENT,
    'webhook-id': payload.event_id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': `v1,${signature}`,
  };
  return { body, headers };
}

/** One keep-alive pool for all deliveries; with private networks disallowed, every connection is vetted. */
export function createDeliveryAgent(settings: Pick<DeliverySettings, 'timeoutMs' | 'allowPrivateNetworks'>): Dispatcher {
  return new Agent({
    connect: settings.allowPrivateNetworks ? { timeout: settings.timeoutMs } : guardedConnector(settings.timeoutMs),
    keepAliveTimeout: 30_000,
    connections: 64,
  });
}

async function readExcerpt(body: AsyncIterable<Buffer> & { destroy(): void }): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    chunks.push(chunk);
    size += chunk.length;
    if (size >= EXCERPT_BYTES) break; // the rest is not ours to read; the socket is dropped
  }
  if (size >= EXCERPT_BYTES) body.destroy();
  return Buffer.concat(chunks).subarray(0, EXCERPT_BYTES).toString('utf8');
}

function classify(statusCode: number, excerpt: string, retryAfter: string | undefined, expectBody: string | null, now: Date): AttemptVerdict {
  if (statusCode >= 200 && statusCode < 300) {
    if (expectBody === null || excerpt.trim().toLowerCase() === expectBody.trim().toLowerCase()) return { kind: 'delivered' };
    return { kind: 'failed', reason: `HTTP ${statusCode} without the expected body "${expectBody}"` };
  }
  if (statusCode === 410) return { kind: 'abandoned', reason: 'HTTP 410 Gone: the merchant asked us to stop' };
  const retryAfterMs = statusCode === 429 || statusCode === 503 ? parseRetryAfter(retryAfter, now) : null;
  const kind = statusCode >= 300 && statusCode < 400 ? 'redirect (not followed)' : `HTTP ${statusCode}`;
  return { kind: 'failed', reason: kind, retryAfterMs };
}

/** One POST to the merchant within `timeoutMs` (connect, headers and body), never following redirects. */
export async function attemptDelivery(url: string, payload: OrderEventPayload, settings: DeliverySettings, dispatcher: Dispatcher, now: Date): Promise<AttemptResult> {
  const started = performance.now();
  const { body, headers } = signedDelivery(payload, settings, now);
  const done = (verdict: AttemptVerdict, statusCode: number | null, error: string | null, excerpt: string | null): AttemptResult => ({
    verdict, statusCode, error, excerpt, durationMs: Math.round(performance.now() - started),
  });
  // A timer cleared when the attempt ends: AbortSignal.timeout() would keep the request reachable for the
  // whole timeout, so every delivery's objects outlived it by seconds and filled the old generation.
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(new DOMException(`timeout after ${settings.timeoutMs} ms`, 'TimeoutError')), settings.timeoutMs);
  try {
    const response = await request(url, {
      method: 'POST', body, headers, dispatcher,
      signal: abort.signal,
      headersTimeout: settings.timeoutMs,
      bodyTimeout: settings.timeoutMs,
    });
    const excerpt = await readExcerpt(response.body);
    const retryAfter = response.headers['retry-after'];
    const verdict = classify(response.statusCode, excerpt, Array.isArray(retryAfter) ? retryAfter[0] : retryAfter, settings.expectBody, now);
    return done(verdict, response.statusCode, verdict.kind === 'delivered' ? null : verdict.reason, excerpt);
  } catch (err) {
    const e = err as Error & { code?: string; cause?: { code?: string; message?: string } };
    if (e.code === 'destination_not_allowed' || e.cause?.code === 'destination_not_allowed') {
      return done({ kind: 'abandoned', reason: 'destination_not_allowed' }, null, (e.cause?.message ?? e.message).slice(0, 1000), null);
    }
    const reason = e.name === 'TimeoutError' || e.name === 'AbortError' ? `timeout after ${settings.timeoutMs} ms` : `${e.code ?? e.name}: ${e.message}`;
    return done({ kind: 'failed', reason }, null, reason.slice(0, 1000), null);
  } finally {
    clearTimeout(timer);
  }
}
