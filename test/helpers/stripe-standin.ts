import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';

/*
 * A local Stripe API (PaymentIntents: retrieve, search, cancel) written from Stripe's API reference, independently of
 * the client. Stripe's answers are not signed: they are authenticated by TLS and by the secret key the request carries,
 * so the stand-in checks every request's `Authorization: Bearer <secret key>` (HTTP Basic with the key as user name
 * too, as Stripe accepts it) and answers 401 in Stripe's error shape otherwise. It also requires a `Stripe-Version`
 * header (the SDK pins one; the answers' shape must not depend on the account's default version).
 */

export const STRIPE_STANDIN_KEYS = {
  /** The account's test secret key: the client gets it, the stand-in accepts only it. */
  secretKey: 'sk_test_51StandinA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvWxYz0123456789',
  /** A well-formed key of another account: the stand-in refuses it. */
  otherSecretKey: 'sk_test_51OtherAcct9z8Y7x6W5v4U3t2S1r0QpOnMlKjIhGfEdCbA987654321',
  /** The endpoint's webhook signing secret, for end-to-end tests that also send webhooks. */
  webhookSecret: 'whsec_standin_0123456789abcdefABCDEF0123456789',
};

export type IntentStatus =
  | 'requires_payment_method'
  | 'requires_confirmation'
  | 'requires_action'
  | 'processing'
  | 'requires_capture'
  | 'canceled'
  | 'succeeded';

/**
 * One PaymentIntent the gateway knows for an order. Paid: `{ status: 'succeeded', amount, currency, id }`; not paid:
 * `{ status: 'requires_payment_method' }`; a declined attempt: add `declined: true`; closed: `{ status: 'canceled' }`.
 */
export interface StandinIntent {
  status: IntentStatus;
  /** pi_… ; a random one when absent. */
  id?: string;
  /** Smallest unit as Stripe counts it; 1234 when absent. */
  amount?: number;
  /** Lower case as Stripe writes it; 'usd' when absent. */
  currency?: string;
  /** last_payment_error is set (a declined card), as after payment_intent.payment_failed. */
  declined?: boolean;
  /** metadata.order_no when it is not the order's own; null leaves metadata empty (a Checkout session's intent). */
  metadataOrderNo?: string | null;
  livemode?: boolean;
  created?: number;
}

/**
 * `garbage`: a 200 whose body is not JSON; `incomplete`: 200 JSON intents without status and amounts; `http-500`:
 * Stripe's api_error; `hang`: never answers; `search-ignores-query`: search returns every intent (a broken index).
 */
export type StandinBehaviour = 'normal' | 'garbage' | 'incomplete' | 'http-500' | 'hang' | 'search-ignores-query';

export interface StandinRequest {
  method: string;
  /** The request target as received (path and query). */
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** Whether the Authorization header carried the account's secret key. */
  authorized: boolean;
}

type Json = Record<string, unknown>;

const CANCELABLE = new Set<IntentStatus>(['requires_payment_method', 'requires_capture', 'requires_confirmation', 'requires_action']);
const CANCELLATION_REASONS = new Set(['duplicate', 'fraudulent', 'requested_by_customer', 'abandoned']);
const SEARCH_CLAUSE = /^metadata\['((?:[^'\\]|\\.)*)'\]:'((?:[^'\\]|\\.)*)'$/;
const unescape = (quoted: string) => quoted.replace(/\\(.)/g, '$1');
const stripeId = (prefix: string) => `${prefix}_3${randomBytes(18).toString('base64url').replace(/[-_]/g, 'x')}`;

function stripeError(type: string, message: string, extra: Json = {}): Json {
  return { error: { ...extra, message, request_log_url: `https://dashboard.stripe.com/test/logs/${stripeId('req')}`, type } };
}

function intentJson(orderNo: string, spec: StandinIntent, id: string): Json {
  const amount = spec.amount ?? 1234;
  const succeeded = spec.status === 'succeeded';
  const order = spec.metadataOrderNo === undefined ? orderNo : spec.metadataOrderNo;
  return {
    id,
    object: 'payment_intent',
    amount,
    amount_capturable: spec.status === 'requires_capture' ? amount : 0,
    amount_details: { tip: {} },
    amount_received: succeeded ? amount : 0,
    application: null,
    automatic_payment_methods: { allow_redirects: 'always', enabled: true },
    canceled_at: spec.status === 'canceled' ? (spec.created ?? 1_750_000_000) + 3600 : null,
    cancellation_reason: spec.status === 'canceled' ? 'abandoned' : null,
    capture_method: 'automatic_async',
    client_secret: `${id}_secret_${randomBytes(12).toString('hex')}`,
    confirmation_method: 'automatic',
    created: spec.created ?? 1_750_000_000,
    currency: spec.currency ?? 'usd',
    customer: null,
    description: null,
    last_payment_error: spec.declined
      ? { code: 'card_declined', decline_code: 'insufficient_funds', message: 'Your card has insufficient funds.', type: 'card_error' }
      : null,
    latest_charge: succeeded ? `ch_${id.slice(3)}` : null,
    livemode: spec.livemode ?? false,
    metadata: order === null ? {} : { order_no: order },
    next_action: null,
    payment_method: succeeded || spec.declined ? `pm_${id.slice(3)}` : null,
    payment_method_types: ['card'],
    processing: null,
    receipt_email: null,
    setup_future_usage: null,
    shipping: null,
    status: spec.status,
  };
}

/** Why Stripe would refuse this request's credentials, or undefined when they are the account's key. */
function authProblem(headers: IncomingHttpHeaders, secretKey: string): string | undefined {
  const value = headers.authorization ?? '';
  const bearer = /^Bearer (.+)$/.exec(value)?.[1];
  const basic = /^Basic (.+)$/.exec(value)?.[1];
  const key = bearer ?? (basic ? Buffer.from(basic, 'base64').toString('utf8').replace(/:.*$/, '') : undefined);
  if (!key)
    return "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').";
  if (key !== secretKey) return `Invalid API Key provided: ${key.slice(0, 8)}${'*'.repeat(Math.max(0, key.length - 12))}${key.slice(-4)}`;
  return undefined;
}

/** Starts the stand-in on 127.0.0.1; `url` is the API base (STRIPE_API_BASE). */
export async function startStripeStandin(options: { secretKey?: string } = {}) {
  const secretKey = options.secretKey ?? STRIPE_STANDIN_KEYS.secretKey;
  /** Every intent, with the order it was set for. */
  const intents = new Map<string, { orderNo: string; json: Json }>();
  const requests: StandinRequest[] = [];
  let behaviour: StandinBehaviour = 'normal';

  function answer(res: ServerResponse, status: number, payload: Json) {
    let body = JSON.stringify(payload, null, 2);
    if (behaviour === 'garbage') [status, body] = [200, '<html><body>Bad gateway</body></html>'];
    if (behaviour === 'http-500')
      [status, body] = [500, JSON.stringify(stripeError('api_error', 'An unknown error occurred', { code: 'api_error_unknown' }), null, 2)];
    res.writeHead(status, { 'Content-Type': 'application/json', 'Request-Id': stripeId('req'), 'Stripe-Version': '2026-10-28.endive' }).end(body);
  }

  const shown = (json: Json): Json =>
    behaviour === 'incomplete' ? { id: json.id, object: json.object, currency: json.currency, metadata: json.metadata } : json;
  const missing = (res: ServerResponse, id: string) =>
    answer(res, 404, stripeError('invalid_request_error', `No such payment_intent: '${id}'`, { code: 'resource_missing', param: 'intent' }));

  function search(res: ServerResponse, params: URLSearchParams) {
    const query = params.get('query') ?? '';
    const clause = SEARCH_CLAUSE.exec(query.trim());
    if (!clause) return answer(res, 400, stripeError('invalid_request_error', `Invalid search query: ${query}`, { param: 'query' }));
    const limit = Number(params.get('limit') ?? '10');
    if (!Number.isInteger(limit) || limit < 1 || limit > 100)
      return answer(res, 400, stripeError('invalid_request_error', 'Invalid integer: limit must be between 1 and 100', { param: 'limit' }));
    const [key, value] = [unescape(clause[1]!), unescape(clause[2]!)];
    const matching = [...intents.values()]
      .map((entry) => entry.json)
      .filter((json) => behaviour === 'search-ignores-query' || (json.metadata as Record<string, string>)[key] === value)
      .sort((a, b) => Number(b.created) - Number(a.created));
    const offset = Number(/^page_(\d+)$/.exec(params.get('page') ?? '')?.[1] ?? '0');
    const data = matching.slice(offset, offset + limit).map(shown);
    const more = offset + limit < matching.length;
    answer(res, 200, { object: 'search_result', data, has_more: more, next_page: more ? `page_${offset + limit}` : null, url: '/v1/payment_intents/search' });
  }

  function cancel(res: ServerResponse, id: string, body: string) {
    const entry = intents.get(id);
    if (!entry) return missing(res, id);
    const reason = new URLSearchParams(body).get('cancellation_reason');
    if (reason !== null && !CANCELLATION_REASONS.has(reason))
      return answer(res, 400, stripeError('invalid_request_error', `Invalid cancellation_reason: ${reason}`, { param: 'cancellation_reason' }));
    const status = entry.json.status as IntentStatus;
    if (!CANCELABLE.has(status)) {
      const message = `You cannot cancel this PaymentIntent because it has a status of ${status}. Only a PaymentIntent with one of the following statuses may be canceled: requires_payment_method, requires_capture, requires_confirmation, requires_action, processing.`;
      return answer(res, 400, stripeError('invalid_request_error', message, { code: 'payment_intent_unexpected_state', payment_intent: entry.json }));
    }
    entry.json = { ...entry.json, status: 'canceled', cancellation_reason: reason, canceled_at: Math.floor(Date.now() / 1000) };
    answer(res, 200, shown(entry.json));
  }

  function route(method: string, url: URL, body: string, res: ServerResponse) {
    const path = url.pathname;
    if (method === 'GET' && path === '/v1/payment_intents/search') return search(res, url.searchParams);
    const one = /^\/v1\/payment_intents\/([^/]+)$/.exec(path);
    if (method === 'GET' && one) {
      const entry = intents.get(decodeURIComponent(one[1]!));
      return entry ? answer(res, 200, shown(entry.json)) : missing(res, decodeURIComponent(one[1]!));
    }
    const toCancel = /^\/v1\/payment_intents\/([^/]+)\/cancel$/.exec(path);
    if (method === 'POST' && toCancel) return cancel(res, decodeURIComponent(toCancel[1]!), body);
    answer(res, 404, stripeError('invalid_request_error', `Unrecognized request URL (${method}: ${path}).`));
  }

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const problem = authProblem(req.headers, secretKey);
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, authorized: problem === undefined });
      if (behaviour === 'hang') return;
      if (problem !== undefined) return answer(res, 401, stripeError('invalid_request_error', problem));
      const version = req.headers['stripe-version'];
      if (typeof version !== 'string' || !/^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$/.test(version))
        return answer(res, 400, stripeError('invalid_request_error', `Invalid Stripe API version: ${String(version)}`));
      route(req.method ?? '', new URL(req.url ?? '/', 'http://standin'), body, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };

  return {
    url: `http://127.0.0.1:${port}`,
    secretKey,
    requests,
    /** What Stripe knows about `orderNo`: its PaymentIntents (replacing earlier ones); null forgets them all. Returns their ids. */
    setTrade(orderNo: string, trade: StandinIntent | StandinIntent[] | null): string[] {
      for (const [id, entry] of intents) if (entry.orderNo === orderNo) intents.delete(id);
      const specs = trade === null ? [] : Array.isArray(trade) ? trade : [trade];
      return specs.map((spec, i) => {
        const id = spec.id ?? stripeId('pi');
        intents.set(id, { orderNo, json: intentJson(orderNo, { created: 1_750_000_000 + i, ...spec }, id) });
        return id;
      });
    },
    /** The PaymentIntent as Stripe holds it now. */
    intent: (id: string): Json | undefined => intents.get(id)?.json,
    setBehaviour(next: StandinBehaviour) {
      behaviour = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export type StripeStandin = Awaited<ReturnType<typeof startStripeStandin>>;

/** The settings that point the service's Stripe client (and webhook adapter) at a stand-in. */
export function stripeStandinEnv(standin: { url: string; secretKey: string }): Record<string, string> {
  return { STRIPE_API_BASE: standin.url, STRIPE_SECRET_KEY: standin.secretKey, STRIPE_WEBHOOK_SECRET: STRIPE_STANDIN_KEYS.webhookSecret };
}
