import { Agent, type Dispatcher } from 'undici';
import type { SignType } from '../shared/signing.ts';
import { parseRetryAfter, type AttemptVerdict } from './retry-policy.ts';
import { signedDelivery } from './signed-body.ts';
import { guardedConnector } from './ssrf-guard.ts';

export { USER_AGENT } from './signed-body.ts';
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

/** One keep-alive pool for all deliveries; with private networks disallowed, every connection is vetted. */
export function createDeliveryAgent(settings: Pick<DeliverySettings, 'timeoutMs' | 'allowPrivateNetworks'>): Dispatcher {
  return new Agent({
    connect: settings.allowPrivateNetworks ? { timeout: settings.timeoutMs } : guardedConnector(settings.timeoutMs),
    keepAliveTimeout: 30_000,
    connections: 64,
  });
}

interface Answer {
  statusCode: number;
  retryAfter: string | undefined;
  excerpt: string;
}

/**
 * Collects a response through undici's dispatch API, with no stream, AbortSignal or async iterator per
 * delivery: the status, Retry-After and the first EXCERPT_BYTES of the body. A longer body is cut off there
 * (the rest is not ours to read; the connection is dropped).
 */
class AnswerHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null;
  private reason: Error | null = null;
  private settled = false;
  private statusCode = 0;
  private retryAfter: string | undefined;
  private readonly chunks: Buffer[] = [];
  private size = 0;

  constructor(
    private readonly resolve: (answer: Answer) => void,
    private readonly reject: (err: Error) => void,
  ) {}

  /** Ends the request now, or as soon as it reaches a connection (what undici's request() does with a signal). */
  abort(reason: Error): void {
    if (this.controller) this.controller.abort(reason);
    else this.reason = reason;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.reason) controller.abort(this.reason);
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    if (statusCode < 200) return; // informational; the final answer follows
    this.statusCode = statusCode;
    const retryAfter = headers['retry-after'];
    this.retryAfter = Array.isArray(retryAfter) ? retryAfter[0] : retryAfter;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.settled) return;
    this.chunks.push(chunk);
    this.size += chunk.length;
    if (this.size >= EXCERPT_BYTES) {
      this.finish();
      controller.abort(new Error('response excerpt complete'));
    }
  }

  onResponseEnd(): void {
    this.finish();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.reject(err);
  }

  private finish(): void {
    if (this.settled) return;
    this.settled = true;
    const body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.resolve({ statusCode: this.statusCode, retryAfter: this.retryAfter, excerpt: body.toString('utf8', 0, Math.min(body.length, EXCERPT_BYTES)) });
  }
}

/** Where a notify URL goes, parsed once per URL (merchants have few): undici's request() would parse it on every call. */
const targets = new Map<string, { origin: string; path: string }>();
function targetOf(url: string): { origin: string; path: string } {
  let target = targets.get(url);
  if (!target) {
    const parsed = new URL(url);
    target = { origin: parsed.origin, path: `${parsed.pathname}${parsed.search}` };
    if (targets.size >= 1000) targets.clear();
    targets.set(url, target);
  }
  return target;
}

/** The POST of `body` with `headers`; rejects like undici's request() would (connection errors, timeouts, aborts). */
function post(url: string, body: string, headers: Record<string, string>, dispatcher: Dispatcher, timeoutMs: number): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    // One timer for the whole attempt (connect, headers, body), cleared as soon as it ends.
    const handler = new AnswerHandler(
      (answer) => (clearTimeout(timer), resolve(answer)),
      (err) => (clearTimeout(timer), reject(err)),
    );
    const timer = setTimeout(() => handler.abort(new DOMException(`timeout after ${timeoutMs} ms`, 'TimeoutError')), timeoutMs);
    try {
      const { origin, path } = targetOf(url);
      dispatcher.dispatch({ origin, path, method: 'POST', body, headers, headersTimeout: timeoutMs, bodyTimeout: timeoutMs }, handler);
    } catch (err) {
      handler.onResponseError(null as never, err as Error);
    }
  });
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

/** One POST of the stored event `payload` to the merchant within `timeoutMs` (connect, headers and body), never following redirects. */
export async function attemptDelivery(url: string, payload: string, settings: DeliverySettings, dispatcher: Dispatcher, now: Date): Promise<AttemptResult> {
  const started = performance.now();
  const durationMs = () => Math.round(performance.now() - started);
  const { body, headers } = signedDelivery(payload, settings, now);
  try {
    const answer = await post(url, body, headers, dispatcher, settings.timeoutMs);
    const verdict = classify(answer.statusCode, answer.excerpt, answer.retryAfter, settings.expectBody, now);
    return { verdict, statusCode: answer.statusCode, error: verdict.kind === 'delivered' ? null : verdict.reason, excerpt: answer.excerpt, durationMs: durationMs() };
  } catch (err) {
    const e = err as Error & { code?: string; cause?: { code?: string; message?: string } };
    if (e.code === 'destination_not_allowed' || e.cause?.code === 'destination_not_allowed') {
      return { verdict: { kind: 'abandoned', reason: 'destination_not_allowed' }, statusCode: null, error: (e.cause?.message ?? e.message).slice(0, 1000), excerpt: null, durationMs: durationMs() };
    }
    const reason = e.name === 'TimeoutError' || e.name === 'AbortError' ? `timeout after ${settings.timeoutMs} ms` : `${e.code ?? e.name}: ${e.message}`;
    return { verdict: { kind: 'failed', reason }, statusCode: null, error: reason.slice(0, 1000), excerpt: null, durationMs: durationMs() };
  }
}
