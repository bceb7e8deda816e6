import { Agent, type Dispatcher } from 'undici';
import type { SignType } from '../shared/signing.ts';
import { parseRetryAfter, type AttemptVerdict } from './retry-policy.ts';
import { signedDelivery } from './signed-body.ts';
import { createTargetConnector } from './target-connector.ts';

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
  /** The request went over a connection to a private, loopback, link-local or other non-public address (development only). */
  privateTarget?: boolean;
}

/** Filled in for a caller that shows the exchange (the console's test notification): what was sent, and the answer's headers. */
export interface AttemptTrace {
  request?: { body: string; headers: Record<string, string> };
  responseHeaders?: Record<string, string | string[] | undefined>;
}

/** The delivery pool, and whether an origin currently has a connection open to a non-public address. */
export type DeliveryAgent = Dispatcher & { reachesPrivate(origin: string): boolean };

/** One keep-alive pool for all deliveries; with private networks disallowed, every connection is vetted. */
export function createDeliveryAgent(settings: Pick<DeliverySettings, 'timeoutMs' | 'allowPrivateNetworks'>): DeliveryAgent {
  const target = createTargetConnector(settings.timeoutMs, settings.allowPrivateNetworks);
  const agent = new Agent({ connect: target.connect, keepAliveTimeout: 30_000, connections: 64 });
  return Object.assign(agent, { reachesPrivate: target.reachesPrivate });
}

interface Answer {
  statusCode: number;
  retryAfter: string | undefined;
  excerpt: string;
  headers: Record<string, string | string[] | undefined>;
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
  private headers: Record<string, string | string[] | undefined> = {};
  private readonly chunks: Buffer[] = [];
  private size = 0;

  constructor(
    private readonly resolve: (answer: Answer) => void,
    private readonly reject: (err: Error) => void,
    /** Called once the request has a connection and again when its answer starts, to note a non-public peer. */
    private readonly notePeer: () => void,
  ) {}

  /** Ends the request now, or as soon as it reaches a connection (what undici's request() does with a signal). */
  abort(reason: Error): void {
    if (this.controller) this.controller.abort(reason);
    else this.reason = reason;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    this.notePeer();
    if (this.reason) controller.abort(this.reason);
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    if (statusCode < 200) return; // informational; the final answer follows
    this.notePeer();
    this.statusCode = statusCode;
    this.headers = headers;
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
    this.resolve({
      statusCode: this.statusCode,
      retryAfter: this.retryAfter,
      excerpt: body.toString('utf8', 0, Math.min(body.length, EXCERPT_BYTES)),
      headers: this.headers,
    });
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

/**
 * The POST of `body` with `headers`; rejects like undici's request() would (connection errors, timeouts, aborts).
 * Sets `seen.privateTarget` when the connection it went over leads to a non-public address.
 */
function post(
  url: string,
  body: string,
  headers: Record<string, string>,
  agent: DeliveryAgent,
  timeoutMs: number,
  seen: { privateTarget: boolean },
): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    const { origin, path } = targetOf(url);
    // One timer for the whole attempt (connect, headers, body), cleared as soon as it ends.
    const handler = new AnswerHandler(
      (answer) => (clearTimeout(timer), resolve(answer)),
      (err) => (clearTimeout(timer), reject(err)),
      () => (seen.privateTarget ||= agent.reachesPrivate(origin)),
    );
    const timer = setTimeout(() => handler.abort(new DOMException(`timeout after ${timeoutMs} ms`, 'TimeoutError')), timeoutMs);
    try {
      agent.dispatch({ origin, path, method: 'POST', body, headers, headersTimeout: timeoutMs, bodyTimeout: timeoutMs }, handler);
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

/**
 * One POST of the stored event `payload` to the merchant within `timeoutMs` (connect, headers and body), never
 * following redirects. With `trace`, also tells what exactly was sent and the answer's headers.
 */
export async function attemptDelivery(
  url: string,
  payload: string,
  settings: DeliverySettings,
  agent: DeliveryAgent,
  now: Date,
  trace?: AttemptTrace,
): Promise<AttemptResult> {
  const started = performance.now();
  const durationMs = () => Math.round(performance.now() - started);
  let signedBody: ReturnType<typeof signedDelivery>;
  try {
    signedBody = signedDelivery(payload, settings, now);
  } catch (err) {
    // Only an event whose fields could re-split A5's string gets here: never sent, and retrying cannot help.
    return {
      verdict: { kind: 'abandoned', reason: 'unsignable_payload' },
      statusCode: null,
      error: (err as Error).message.slice(0, 1000),
      excerpt: null,
      durationMs: durationMs(),
    };
  }
  const { body, headers } = signedBody;
  if (trace) trace.request = { body, headers };
  const seen = { privateTarget: false };
  try {
    const answer = await post(url, body, headers, agent, settings.timeoutMs, seen);
    if (trace) trace.responseHeaders = answer.headers;
    const verdict = classify(answer.statusCode, answer.excerpt, answer.retryAfter, settings.expectBody, now);
    return {
      verdict,
      statusCode: answer.statusCode,
      error: verdict.kind === 'delivered' ? null : verdict.reason,
      excerpt: answer.excerpt,
      durationMs: durationMs(),
      privateTarget: seen.privateTarget,
    };
  } catch (err) {
    const e = err as Error & { code?: string; cause?: { code?: string; message?: string } };
    if (e.code === 'destination_not_allowed' || e.cause?.code === 'destination_not_allowed') {
      return {
        verdict: { kind: 'abandoned', reason: 'destination_not_allowed' },
        statusCode: null,
        error: (e.cause?.message ?? e.message).slice(0, 1000),
        excerpt: null,
        durationMs: durationMs(),
      };
    }
    const reason = e.name === 'TimeoutError' || e.name === 'AbortError' ? `timeout after ${settings.timeoutMs} ms` : `${e.code ?? e.name}: ${e.message}`;
    return {
      verdict: { kind: 'failed', reason },
      statusCode: null,
      error: reason.slice(0, 1000),
      excerpt: null,
      durationMs: durationMs(),
      privateTarget: seen.privateTarget,
    };
  }
}
