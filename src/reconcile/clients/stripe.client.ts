import Stripe from 'stripe';
import { fetch as undiciFetch } from 'undici';
import { excerptOf, GatewayCallError, type GatewayClient, type QueryAnswer, type QueryTarget } from '../gateway-client.ts';
import { answerOf, CANCELABLE, evidenceOf, oursOnly, readIntent, searchSchema, stripeSearchQuery, type Intent } from './stripe-intents.ts';
import { createStripeRefunds } from './stripe-refunds.ts';

export { stripeSearchQuery };

export const STRIPE_API_BASE = 'https://api.stripe.com';
/** 100 a page (Stripe's maximum); an order with more intents than this is not one we made. */
const PAGE_LIMIT = 100;
const MAX_PAGES = 5;
const SECRET_KEY = /^(sk|rk)_(test|live)_[A-Za-z0-9]+$/;
const PAYMENT_INTENT_ID = /^pi_[A-Za-z0-9_]{1,120}$/;

export interface StripeClientOptions {
  /** STRIPE_SECRET_KEY: a secret (sk_…) or restricted (rk_…) key allowed to read and cancel PaymentIntents and to write refunds. */
  secretKey: string;
  /** STRIPE_API_BASE; https://api.stripe.com by default. */
  apiBase?: string;
  timeoutMs: number;
}

export interface StripeEndpoint {
  host: string;
  port: number;
  protocol: 'http' | 'https';
}

/** The SDK takes host, port and protocol, never a URL: a base with a path, credentials or a query cannot be honoured. */
export function parseStripeApiBase(base: string): StripeEndpoint {
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new Error('STRIPE_API_BASE: must be an http(s) URL such as https://api.stripe.com');
  }
  const protocol = url.protocol.slice(0, -1);
  if (protocol !== 'http' && protocol !== 'https') throw new Error('STRIPE_API_BASE: must start with https:// (or http:// for a local stand-in)');
  if (url.pathname !== '/' || url.search || url.hash || url.username || url.password)
    throw new Error('STRIPE_API_BASE: must be a scheme, host and port only (no path, query or credentials)');
  const port = url.port ? Number(url.port) : protocol === 'https' ? 443 : 80;
  return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port, protocol };
}

/** Stripe's error as evidence: its type, code and message (Stripe masks any key it names). */
const stripeErrorExcerpt = (err: InstanceType<typeof Stripe.errors.StripeError>) =>
  excerptOf(JSON.stringify({ error: { type: err.rawType, code: err.code, message: err.message } }));

/** A failure of the SDK in the reconciler's terms; `status` is the HTTP status seen, when there was an answer. */
function callError(err: unknown, what: string, signal: AbortSignal, timeoutMs: number, status: number | undefined): GatewayCallError {
  if (err instanceof GatewayCallError) return err;
  if (signal.aborted) return new GatewayCallError('network', `${what}: aborted`);
  if (err instanceof Stripe.errors.StripeConnectionError) {
    const code = (err.detail as { code?: unknown } | undefined)?.code;
    if (code === 'ETIMEDOUT') return new GatewayCallError('timeout', `${what}: no answer within ${timeoutMs} ms`);
    return new GatewayCallError('network', `${what}: ${err.message}`);
  }
  if (err instanceof Stripe.errors.StripeError) {
    if (err.statusCode === undefined) {
      // The SDK could not parse the body: a proxy's error page, or a 2xx that is not Stripe's JSON.
      const raw = (err.raw as { exception?: { rawBody?: unknown } }).exception?.rawBody;
      const excerpt = typeof raw === 'string' ? excerptOf(raw) : undefined;
      if (status !== undefined && (status < 200 || status > 299))
        return new GatewayCallError('http_status', `${what}: HTTP ${status}, not Stripe's JSON`, excerpt);
      return new GatewayCallError('malformed', `${what}: the answer is not JSON`, excerpt);
    }
    const detail = `${err.rawType ?? err.type}${err.code ? ` ${err.code}` : ''}: ${err.message.slice(0, 300)}`;
    return new GatewayCallError('http_status', `${what}: HTTP ${err.statusCode} ${detail}`, stripeErrorExcerpt(err));
  }
  return new GatewayCallError('network', `${what}: ${(err as Error).message}`);
}

const stripeCode = (err: unknown, status: number, code: string) =>
  err instanceof Stripe.errors.StripeInvalidRequestError && err.statusCode === status && err.code === code;

/**
 * Stripe PaymentIntents through the official SDK: retrieve the remembered intent, search the others by
 * metadata.order_no, cancel the open ones to close; refunds in stripe-refunds.ts. Answers are authenticated by TLS and the secret key (Stripe does
 * not sign them). Construction throws, naming the setting.
 */
export function createStripeClient(options: StripeClientOptions): GatewayClient {
  if (!SECRET_KEY.test(options.secretKey)) throw new Error('STRIPE_SECRET_KEY: must be a Stripe secret or restricted key (sk_… or rk_…)');
  const endpoint = parseStripeApiBase(options.apiBase ?? STRIPE_API_BASE);
  const liveKey = options.secretKey.includes('_live_');
  const { timeoutMs } = options;

  /**
   * One call with an SDK instance bound to this call's signal (the SDK takes none per request): the fetch it uses
   * stops on the signal or the SDK's own timeout, and reports the HTTP status the SDK drops with an unparsable body.
   */
  async function call<T>(what: string, signal: AbortSignal, run: (stripe: Stripe) => Promise<T>, expected?: (err: unknown) => T | undefined): Promise<T> {
    if (signal.aborted) throw new GatewayCallError('network', `${what}: aborted before it was sent`);
    let status: number | undefined;
    // undici's own fetch: importing undici 7 makes its Agent the global dispatcher, which Node 20's built-in fetch
    // (undici 6) then uses and which refuses the Content-Length header the SDK sets on every POST.
    const fetchWithSignal = (async (input: string | URL, init?: RequestInit) => {
      const res = await undiciFetch(input, {
        ...(init as Parameters<typeof undiciFetch>[1]),
        signal: init?.signal ? AbortSignal.any([init.signal, signal]) : signal,
      });
      status = res.status;
      return res;
    }) as unknown as typeof fetch;
    const stripe = new Stripe(options.secretKey, {
      ...endpoint,
      timeout: timeoutMs,
      maxNetworkRetries: 0,
      telemetry: false,
      httpClient: Stripe.createFetchHttpClient(fetchWithSignal),
    });
    try {
      return await run(stripe);
    } catch (err) {
      const handled = signal.aborted ? undefined : expected?.(err);
      if (handled !== undefined) return handled;
      throw callError(err, what, signal, timeoutMs, status);
    }
  }

  /** The remembered intent, or null when there is none or Stripe does not know it. */
  async function retrieve(id: string, signal: AbortSignal): Promise<Intent | null> {
    const intent = await call(
      `GET payment_intents/${id}`,
      signal,
      async (stripe) => readIntent(await stripe.paymentIntents.retrieve(id)),
      (err) => (stripeCode(err, 404, 'resource_missing') ? null : undefined),
    );
    if (intent && intent.id !== id) throw new GatewayCallError('malformed', `asked for PaymentIntent ${id}, got ${intent.id.slice(0, 64)}`);
    return intent;
  }

  async function search(orderNo: string, signal: AbortSignal): Promise<Intent[]> {
    const found: Intent[] = [];
    let page: string | undefined;
    for (let n = 0; n < MAX_PAGES; n++) {
      const params = { query: stripeSearchQuery(orderNo), limit: PAGE_LIMIT, ...(page ? { page } : {}) };
      const result = await call('GET payment_intents/search', signal, async (stripe) => searchSchema.safeParse(await stripe.paymentIntents.search(params)));
      if (!result.success) throw new GatewayCallError('malformed', 'the search answer is not a search_result', excerptOf(JSON.stringify(result.error.issues)));
      found.push(...result.data.data.map(readIntent));
      if (!result.data.has_more) return found;
      page = result.data.next_page ?? undefined;
      if (!page) throw new GatewayCallError('malformed', 'the search answer has more results but no next_page');
    }
    throw new GatewayCallError('malformed', `more than ${MAX_PAGES * PAGE_LIMIT} PaymentIntents name order ${orderNo}`);
  }

  /** The order's intents: the remembered one (enough when it succeeded), then those the search finds. */
  async function intentsOf(target: QueryTarget, signal: AbortSignal): Promise<{ ours: Intent[]; reference?: string }> {
    const reference = target.reference && PAYMENT_INTENT_ID.test(target.reference) ? target.reference : undefined;
    const byId = new Map<string, Intent>();
    const remembered = reference ? await retrieve(reference, signal) : null;
    if (remembered) {
      if (remembered.status === 'succeeded' && oursOnly([remembered], target.orderNo, reference).length === 1) return { ours: [remembered], reference };
      byId.set(remembered.id, remembered);
    }
    // The search index may lag the retrieve by a minute: the retrieved copy is kept.
    for (const intent of await search(target.orderNo, signal)) if (!byId.has(intent.id)) byId.set(intent.id, intent);
    return { ours: oursOnly(byId.values(), target.orderNo, reference), reference };
  }

  return {
    gateway: 'stripe',
    refunds: createStripeRefunds(call),
    async query(target: QueryTarget, signal: AbortSignal): Promise<QueryAnswer> {
      const { ours, reference } = await intentsOf(target, signal);
      return answerOf(ours, reference, liveKey);
    },
    async close(target: QueryTarget, signal: AbortSignal) {
      const { ours } = await intentsOf(target, signal);
      const paid = ours.find((i) => i.status === 'succeeded');
      if (paid) throw new GatewayCallError('refused', `PaymentIntent ${paid.id} succeeded; the order is paid`);
      const canceled: Record<string, unknown>[] = [];
      for (const intent of ours.filter((i) => CANCELABLE.has(i.status) || i.status === 'processing')) {
        const what = `POST payment_intents/${intent.id}/cancel`;
        // Stripe's documented answer when the intent moved on (paid, or processing it cannot stop): asked again later.
        const refusal = (err: unknown): undefined => {
          if (!(err instanceof Stripe.errors.StripeError) || !stripeCode(err, 400, 'payment_intent_unexpected_state')) return undefined;
          throw new GatewayCallError('refused', `${what}: Stripe will not cancel it: ${err.message.slice(0, 200)}`, stripeErrorExcerpt(err));
        };
        const result = await call(
          what,
          signal,
          async (stripe) => readIntent(await stripe.paymentIntents.cancel(intent.id, { cancellation_reason: 'abandoned' })),
          refusal,
        );
        if (result.status !== 'canceled') throw new GatewayCallError('refused', `${what}: the PaymentIntent is ${result.status}, not canceled`);
        canceled.push(evidenceOf(result));
      }
      return { fields: { canceled, already_canceled: ours.filter((i) => i.status === 'canceled').map((i) => i.id) } };
    },
  };
}
