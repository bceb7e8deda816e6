import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';

/*
 * A local Stripe API (PaymentIntents: retrieve, search, cancel; Refunds: create, retrieve, list; Checkout Sessions:
 * retrieve) written from Stripe's API reference, independently of the client. Refund creation honours the
 * Idempotency-Key as Stripe does: the same key and parameters replay the first answer, other parameters are refused. Stripe's answers are not signed: they are authenticated by TLS and by the secret key the request carries,
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
 * `garbage`: a 200 whose body is not JSON (after doing the work); `incomplete`: 200 JSON intents and refunds without
 * status and amounts; `http-500` / `http-429`: Stripe's api_error / its rate limit, before doing anything; `hang`:
 * never answers; `search-ignores-query`: search returns every intent (a broken index); `reset`: does the work, then
 * drops the connection without an answer; `foreign-refund`: refunds are answered naming another refund_no.
 */
export type StandinBehaviour = 'normal' | 'garbage' | 'incomplete' | 'http-500' | 'http-429' | 'hang' | 'search-ignores-query' | 'reset' | 'foreign-refund';

export type RefundStatus = 'pending' | 'requires_action' | 'succeeded' | 'failed' | 'canceled';

/** How the next refund request is treated: created with this status (succeeded by default), or refused with a 400. */
export interface RefundPlan {
  status?: RefundStatus;
  /** failure_reason of a failed or canceled refund. */
  failureReason?: string;
  refuse?: { code: string; message: string };
}

/** A refund put straight into the account (made elsewhere, e.g. in the Dashboard), for the query tests. */
export interface StandinRefund {
  id?: string;
  status: RefundStatus;
  amount?: number;
  /** metadata.refund_no; absent leaves metadata empty (a Dashboard refund). */
  refundNo?: string;
  created?: number;
  failureReason?: string;
}

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

function refundJson(intent: Json, id: string, amount: number, metadata: Record<string, string>, plan: RefundPlan & { created?: number }): Json {
  const status = plan.status ?? 'succeeded';
  const ended = status === 'failed' || status === 'canceled';
  return {
    id,
    object: 'refund',
    amount,
    balance_transaction: stripeId('txn'),
    charge: intent.latest_charge,
    created: plan.created ?? Math.floor(Date.now() / 1000),
    currency: intent.currency,
    destination_details: { card: { reference_status: 'pending', reference_type: 'acquirer_reference_number', type: 'refund' }, type: 'card' },
    ...(ended ? { failure_balance_transaction: stripeId('txn') } : {}),
    // A failed refund always says why; a canceled one only when it was given a reason.
    ...(status === 'failed' || plan.failureReason ? { failure_reason: plan.failureReason ?? 'unknown' } : {}),
    metadata,
    payment_intent: intent.id,
    ...(status === 'pending' ? { pending_reason: 'processing' } : {}),
    reason: null,
    receipt_number: null,
    source_transfer_reversal: null,
    status,
    transfer_reversal: null,
  };
}

/** Stripe's form encoding of `metadata[key]=value` read back into an object. */
function formMetadata(form: URLSearchParams): Record<string, string> {
  const metadata: Record<string, string> = {};
  for (const [key, value] of form) {
    const name = /^metadata\[(.+)\]$/.exec(key)?.[1];
    if (name !== undefined) metadata[name] = value;
  }
  return metadata;
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
  const refunds = new Map<string, Json>();
  /** Idempotency-Key → the parameters first sent with it and Stripe's saved answer. */
  const idempotency = new Map<string, { body: string; status: number; payload: Json }>();
  const sessions = new Map<string, Json>();
  let nextRefund: RefundPlan = {};

  function answer(res: ServerResponse, status: number, payload: Json, headers: Record<string, string> = {}) {
    let body = JSON.stringify(payload, null, 2);
    if (behaviour === 'garbage') [status, body] = [200, '<html><body>Bad gateway</body></html>'];
    if (behaviour === 'reset') return res.destroy();
    res.writeHead(status, { 'Content-Type': 'application/json', 'Request-Id': stripeId('req'), 'Stripe-Version': '2026-10-28.endive', ...headers }).end(body);
  }

  const shown = (json: Json): Json => {
    if (behaviour === 'incomplete') return { id: json.id, object: json.object, currency: json.currency, metadata: json.metadata };
    if (behaviour === 'foreign-refund' && json.object === 'refund') return { ...json, metadata: { ...(json.metadata as Json), refund_no: 'SOMEONE_ELSE' } };
    return json;
  };
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

  const refundedOn = (intentId: string) => [...refunds.values()].filter((r) => r.payment_intent === intentId);

  function createRefund(res: ServerResponse, body: string, key: string | undefined) {
    const saved = key === undefined ? undefined : idempotency.get(key);
    if (saved && saved.body !== body) {
      const message = `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${key}' if you meant to execute a different request.`;
      return answer(res, 400, stripeError('idempotency_error', message));
    }
    if (saved) return answer(res, saved.status, shown(saved.payload), { 'Idempotent-Replayed': 'true' });
    const form = new URLSearchParams(body);
    const intentId = form.get('payment_intent') ?? '';
    const intent = intents.get(intentId)?.json;
    const refuse = (message: string, extra: Json) => answer(res, 400, stripeError('invalid_request_error', message, extra));
    if (!intent) return refuse(`No such payment_intent: '${intentId}'`, { code: 'resource_missing', param: 'payment_intent' });
    if (intent.status !== 'succeeded')
      return refuse(`This PaymentIntent (${intentId}) does not have a successful charge to refund.`, { code: 'charge_not_refundable' });
    const received = intent.amount_received as number;
    const refunded = refundedOn(intentId)
      .filter((r) => r.status !== 'failed' && r.status !== 'canceled')
      .reduce((sum, r) => sum + (r.amount as number), 0);
    const amount = form.has('amount') ? Number(form.get('amount')) : received - refunded;
    if (!Number.isInteger(amount) || amount < 1) return refuse('Invalid positive integer', { code: 'parameter_invalid_integer', param: 'amount' });
    if (refunded >= received) return refuse(`Charge ${String(intent.latest_charge)} has already been refunded.`, { code: 'charge_already_refunded' });
    if (amount > received - refunded)
      return refuse(`Refund amount (${amount}) is greater than unrefunded amount on charge (${received - refunded})`, {
        code: 'amount_too_large',
        param: 'amount',
      });
    const plan = nextRefund;
    if (plan.refuse) return refuse(plan.refuse.message, { code: plan.refuse.code });
    const id = stripeId('re');
    const refund = refundJson(intent, id, amount, formMetadata(form), plan);
    refunds.set(id, refund);
    if (key !== undefined) idempotency.set(key, { body, status: 200, payload: refund });
    answer(res, 200, shown(refund));
  }

  function listRefunds(res: ServerResponse, params: URLSearchParams) {
    const intentId = params.get('payment_intent');
    if (intentId !== null && !intents.has(intentId))
      return answer(
        res,
        400,
        stripeError('invalid_request_error', `No such payment_intent: '${intentId}'`, { code: 'resource_missing', param: 'payment_intent' }),
      );
    const limit = Number(params.get('limit') ?? '10');
    if (!Number.isInteger(limit) || limit < 1 || limit > 100)
      return answer(res, 400, stripeError('invalid_request_error', 'Invalid integer: limit must be between 1 and 100', { param: 'limit' }));
    const all = [...refunds.values()].filter((r) => intentId === null || r.payment_intent === intentId).reverse();
    all.sort((a, b) => Number(b.created) - Number(a.created));
    const after = params.get('starting_after');
    const start = after === null ? 0 : all.findIndex((r) => r.id === after) + 1;
    const data = all.slice(start, start + limit).map(shown);
    answer(res, 200, { object: 'list', data, has_more: start + limit < all.length, url: '/v1/refunds' });
  }

  function route(method: string, url: URL, body: string, res: ServerResponse, key: string | undefined) {
    const path = url.pathname;
    if (method === 'POST' && path === '/v1/refunds') return createRefund(res, body, key);
    if (method === 'GET' && path === '/v1/refunds') return listRefunds(res, url.searchParams);
    const refund = /^\/v1\/refunds\/([^/]+)$/.exec(path);
    if (method === 'GET' && refund) {
      const id = decodeURIComponent(refund[1]!);
      const found = refunds.get(id);
      if (found) return answer(res, 200, shown(found));
      return answer(res, 404, stripeError('invalid_request_error', `No such refund: '${id}'`, { code: 'resource_missing', param: 'id' }));
    }
    const session = /^\/v1\/checkout\/sessions\/([^/]+)$/.exec(path);
    if (method === 'GET' && session) {
      const id = decodeURIComponent(session[1]!);
      const found = sessions.get(id);
      if (found) return answer(res, 200, found);
      return answer(res, 404, stripeError('invalid_request_error', `No such checkout.session: '${id}'`, { code: 'resource_missing', param: 'session' }));
    }
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
      // Stripe's failures before any work is done: nothing changed, and the answer says so.
      if (behaviour === 'http-500') return answer(res, 500, stripeError('api_error', 'An unknown error occurred', { code: 'api_error_unknown' }));
      if (behaviour === 'http-429')
        return answer(res, 429, stripeError('invalid_request_error', 'Request rate limit exceeded. Please retry after a short delay.', { code: 'rate_limit' }));
      if (problem !== undefined) return answer(res, 401, stripeError('invalid_request_error', problem));
      const version = req.headers['stripe-version'];
      if (typeof version !== 'string' || !/^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$/.test(version))
        return answer(res, 400, stripeError('invalid_request_error', `Invalid Stripe API version: ${String(version)}`));
      const key = req.headers['idempotency-key'];
      route(req.method ?? '', new URL(req.url ?? '/', 'http://standin'), body, res, typeof key === 'string' ? key : undefined);
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
    /** How the next refund requests are treated (until changed): `{}` creates succeeded refunds. */
    setNextRefund(plan: RefundPlan) {
      nextRefund = plan;
    },
    /** The refund as Stripe holds it now. */
    refund: (id: string): Json | undefined => refunds.get(id),
    /** Every refund of a PaymentIntent, oldest first. */
    refundsOf: (intentId: string): Json[] => refundedOn(intentId),
    /** A refund that moved on at Stripe (pending → succeeded, or failed with a reason). */
    updateRefund(id: string, status: RefundStatus, failureReason?: string) {
      const refund = refunds.get(id);
      if (!refund) throw new Error(`no refund ${id}`);
      const { pending_reason: _pending, ...rest } = refund;
      refunds.set(id, { ...rest, status, ...(status === 'failed' || failureReason ? { failure_reason: failureReason ?? 'unknown' } : {}) });
    },
    /** A refund made outside the client (the Dashboard, another app), on a PaymentIntent set with setTrade. Returns its id. */
    putRefund(intentId: string, spec: StandinRefund): string {
      const intent = intents.get(intentId)?.json;
      if (!intent) throw new Error(`no PaymentIntent ${intentId}`);
      const id = spec.id ?? stripeId('re');
      const metadata: Record<string, string> = spec.refundNo === undefined ? {} : { refund_no: spec.refundNo };
      refunds.set(id, refundJson(intent, id, spec.amount ?? 100, metadata, spec));
      return id;
    },
    /** Stripe prunes idempotency keys once they are 24 hours old: a key sent again then makes a new request. */
    forgetIdempotencyKeys() {
      idempotency.clear();
    },
    /** A Checkout Session whose payment_intent is `intentId` (null: none, e.g. not paid yet). */
    setSession(id: string, intentId: string | null) {
      sessions.set(id, {
        id,
        object: 'checkout.session',
        mode: 'payment',
        payment_intent: intentId,
        payment_status: intentId ? 'paid' : 'unpaid',
        status: 'complete',
      });
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
