import { createServer } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import type { GatewayClient, RefundClient, RefundTarget } from '../src/reconcile/gateway-client.ts';
import { createGenericRefundClient } from '../src/reconcile/clients/generic-refund.client.ts';
import type { QueryTransport } from '../src/reconcile/clients/generic.client.ts';
import { httpFormTransport } from '../src/reconcile/clients/http-transport.ts';
import { createRefundClients } from '../src/reconcile/clients/index.ts';
import { systemClock } from '../src/shared/time.ts';
import { startGenericQueryStandin, type GenericQueryStandin } from './helpers/generic-query-standin.ts';
import { failure } from './helpers/gateway-call.ts';

/*
 * The generic refund client against a local stand-in of the generic gateway: it checks every request's signature
 * with the tests' own signer, keeps its own refund books (refusing unpaid trades, over-refunds, another currency)
 * and signs its refund-query answers, or misbehaves as the test asks.
 */

const SECRET = 'generic-refund-client-secret-0123456789';
const TIMEOUT_MS = 400;
let standin: GenericQueryStandin;
let refunds: RefundClient;

beforeAll(async () => {
  standin = await startGenericQueryStandin({ secret: SECRET });
  refunds = createGenericRefundClient(
    'generic',
    SECRET,
    httpFormTransport(standin.refundUrl, TIMEOUT_MS),
    httpFormTransport(standin.url, TIMEOUT_MS),
    systemClock,
  );
});
afterAll(() => standin.close());
afterEach(() => {
  standin.setBehaviour('normal');
  standin.setRefundBehaviour('normal');
});

let seq = 0;
const newNo = (prefix: string) => `${prefix}${Date.now().toString(36)}_${++seq}`;
const signal = () => new AbortController().signal;

/** An order paid 12.34 CNY at the stand-in (unless told otherwise) and a refund of 5.00 of it. */
function paidOrder(
  refund: Partial<RefundTarget> = {},
  trade: { status?: 'success' | 'failed' | 'pending'; amount?: string; currency?: string } = {},
): RefundTarget {
  const orderNo = newNo('GR');
  standin.setTrade(orderNo, { status: 'success', amount: '12.34', currency: 'CNY', transactionId: `TX-${orderNo}`, ...trade });
  return {
    orderNo,
    refundNo: newNo('RF'),
    amountMinor: 500,
    currency: 'CNY',
    orderAmountMinor: 1234,
    transactionId: `TX-${orderNo}`,
    reason: 'returned goods',
    gatewayRefundId: null,
    createdAt: new Date(),
    ...refund,
  };
}

const lastRequest = (kind: 'refund' | 'refund-query') => standin.requests.filter((r) => r.kind === kind).at(-1)!;

describe('generic refund client: the refund request', () => {
  it('sends the signed contract form; 200 is accepted (pending), and the gateway books it', async () => {
    const t = paidOrder();
    const answer = await refunds.refund(t, signal());
    expect(answer).toEqual({
      state: 'pending',
      gatewayRefundId: null,
      gatewayStatus: 'accepted',
      fields: { http_status: 200, body: expect.stringContaining(t.refundNo) as unknown },
    });
    const sent = lastRequest('refund');
    expect(sent).toMatchObject({ signed: true, fresh: true, orderNo: t.orderNo, refundNo: t.refundNo });
    expect(Object.keys(sent.form).sort()).toEqual(['currency', 'nonce', 'order_no', 'refund_amount', 'refund_no', 'sign', 'sign_type', 'timestamp']);
    expect(sent.form).toMatchObject({ refund_amount: '5.00', currency: 'CNY', sign_type: 'HMAC-SHA256' });
    expect(standin.refundOf(t.refundNo)).toEqual({ orderNo: t.orderNo, status: 'refund_pending', amount: '5.00', currency: 'CNY' });
  });

  it('writes the amount in the currency exponent (JPY has none)', async () => {
    const t = paidOrder({ amountMinor: 500, currency: 'JPY', orderAmountMinor: 1200 }, { amount: '1200', currency: 'JPY' });
    expect((await refunds.refund(t, signal())).state).toBe('pending');
    expect(lastRequest('refund').form.refund_amount).toBe('500');
  });

  it('is idempotent by refund_no: the same refund again is accepted again and refunds once', async () => {
    const t = paidOrder({ amountMinor: 1000 });
    expect((await refunds.refund(t, signal())).state).toBe('pending');
    expect((await refunds.refund(t, signal())).state).toBe('pending');
    // Twice 10.00 of 12.34 would be refused: the repeat did not count again, a further 2.34 still fits.
    expect((await refunds.refund({ ...t, refundNo: newNo('RF'), amountMinor: 234 }, signal())).state).toBe('pending');
  });

  it('a 4xx refusal is failed, with the start of the body as reason', async () => {
    const unpaid = paidOrder({}, { status: 'pending' });
    expect(await refunds.refund(unpaid, signal())).toEqual({
      state: 'failed',
      gatewayRefundId: null,
      reason: expect.stringContaining('trade_not_paid') as unknown,
      fields: { http_status: 409, body: expect.stringContaining('is not paid') as unknown },
    });
    const first = paidOrder({ amountMinor: 1000 });
    await refunds.refund(first, signal());
    const over = await refunds.refund({ ...first, refundNo: newNo('RF'), amountMinor: 235 }, signal());
    expect(over).toMatchObject({ state: 'failed', reason: expect.stringContaining('refund_exceeds_paid') as unknown });
    const otherCurrency = await refunds.refund(paidOrder({ currency: 'USD' }), signal());
    expect(otherCurrency).toMatchObject({ state: 'failed', reason: expect.stringContaining('currency_mismatch') as unknown });
    const reused = await refunds.refund({ ...first, amountMinor: 100 }, signal());
    expect(reused).toMatchObject({ state: 'failed', reason: expect.stringContaining('refund_no_used') as unknown });
    expect(standin.refundOf(unpaid.refundNo)).toBeUndefined();
  });

  it('a request the gateway cannot verify (another key) is refused: failed, nothing booked', async () => {
    const t = paidOrder();
    const wrongKey = createGenericRefundClient('generic', 'not-the-secret', httpFormTransport(standin.refundUrl, TIMEOUT_MS), null, systemClock);
    expect(await wrongKey.refund(t, signal())).toMatchObject({ state: 'failed', reason: '{"error":"bad_signature"}' });
    expect(lastRequest('refund').signed).toBe(false);
    expect(standin.refundOf(t.refundNo)).toBeUndefined();
  });

  it('the reason is at most 200 characters, and says the HTTP status when the body is empty', async () => {
    const long: QueryTransport = async () => ({ status: 400, body: `  ${'é'.repeat(150)}${'😀'.repeat(100)}` });
    const answer = await createGenericRefundClient('generic', SECRET, long, null, systemClock).refund(paidOrder(), signal());
    expect(answer.state).toBe('failed');
    const reason = (answer as { reason: string }).reason;
    expect([...reason]).toHaveLength(200);
    expect(reason).toBe(`${'é'.repeat(150)}${'😀'.repeat(50)}`);
    const empty: QueryTransport = async () => ({ status: 404, body: '' });
    expect(await createGenericRefundClient('generic', SECRET, empty, null, systemClock).refund(paidOrder(), signal())).toMatchObject({
      state: 'failed',
      reason: 'HTTP 404',
    });
  });

  it('5xx, 429 and 408 leave the outcome unknown: thrown, never failed', async () => {
    const t = paidOrder();
    standin.setRefundBehaviour('http-500', t.refundNo);
    expect(await failure(refunds.refund(t, signal()))).toMatchObject({ kind: 'http_status', excerpt: expect.stringContaining('down') as unknown });
    standin.setRefundBehaviour('http-429', t.refundNo);
    expect((await failure(refunds.refund(t, signal()))).kind).toBe('http_status');
    const timeout: QueryTransport = async () => ({ status: 408, body: 'Request Timeout' });
    expect((await failure(createGenericRefundClient('generic', SECRET, timeout, null, systemClock).refund(t, signal()))).kind).toBe('http_status');
    const redirect: QueryTransport = async () => ({ status: 302, body: '' });
    expect((await failure(createGenericRefundClient('generic', SECRET, redirect, null, systemClock).refund(t, signal()))).kind).toBe('http_status');
    expect(standin.refundOf(t.refundNo)).toBeUndefined();
  });

  it('an answer lost after the gateway booked the refund: thrown, and the query then finds it pending', async () => {
    const t = paidOrder();
    standin.setRefundBehaviour('accept-then-500', t.refundNo);
    expect((await failure(refunds.refund(t, signal()))).kind).toBe('http_status');
    expect(await refunds.queryRefund(t, signal())).toMatchObject({ state: 'pending', gatewayStatus: 'refund_pending' });
  });

  it('a gateway that hangs past the timeout, drops the connection or is not there: thrown', async () => {
    const t = paidOrder();
    standin.setRefundBehaviour('hang', t.refundNo);
    const started = Date.now();
    expect((await failure(refunds.refund(t, signal()))).kind).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(TIMEOUT_MS + 1500);
    standin.setRefundBehaviour('reset', t.refundNo);
    expect((await failure(refunds.refund(t, signal()))).kind).toBe('network');
    const port = await closedPort();
    const nowhere = createGenericRefundClient('generic', SECRET, httpFormTransport(`http://127.0.0.1:${port}/refund`, TIMEOUT_MS), null, systemClock);
    expect((await failure(nowhere.refund(t, signal()))).kind).toBe('network');
  });
});

describe('generic refund client: asking about a refund', () => {
  it('asks with the signed query form plus refund_no', async () => {
    const t = paidOrder();
    await refunds.queryRefund(t, signal());
    const sent = lastRequest('refund-query');
    expect(sent).toMatchObject({ signed: true, fresh: true, orderNo: t.orderNo, refundNo: t.refundNo });
    expect(Object.keys(sent.form).sort()).toEqual(['nonce', 'order_no', 'refund_no', 'sign', 'sign_type', 'timestamp']);
    expect(standin.askedAbout(t.orderNo)).toBe(0);
  });

  it('maps refund_not_found, refund_pending, refund_success (amount in minor units) and refund_failed', async () => {
    const t = paidOrder();
    expect(await refunds.queryRefund(t, signal())).toEqual({
      state: 'not_found',
      gatewayStatus: 'refund_not_found',
      fields: { order_no: t.orderNo, refund_no: t.refundNo, status: 'refund_not_found', refund_amount: undefined, currency: undefined },
    });
    await refunds.refund(t, signal());
    expect(await refunds.queryRefund(t, signal())).toMatchObject({ state: 'pending', gatewayRefundId: null, gatewayStatus: 'refund_pending' });
    standin.setRefund(t.refundNo, { orderNo: t.orderNo, status: 'refund_success', amount: '5.00', currency: 'CNY' });
    expect(await refunds.queryRefund(t, signal())).toEqual({
      state: 'succeeded',
      gatewayRefundId: null,
      amountMinor: 500,
      currency: 'CNY',
      fields: { order_no: t.orderNo, refund_no: t.refundNo, status: 'refund_success', refund_amount: '5.00', currency: 'CNY' },
    });
    standin.setRefund(t.refundNo, { orderNo: t.orderNo, status: 'refund_failed', amount: '5.00', currency: 'CNY' });
    expect(await refunds.queryRefund(t, signal())).toMatchObject({ state: 'failed', gatewayRefundId: null, reason: 'the gateway reported refund_failed' });
  });

  it('reports the amount and currency the gateway states, for the caller to check against the refund', async () => {
    const t = paidOrder();
    standin.setRefund(t.refundNo, { orderNo: t.orderNo, status: 'refund_success', amount: '50.00', currency: 'CNY' });
    expect(await refunds.queryRefund(t, signal())).toMatchObject({ state: 'succeeded', amountMinor: 5000, currency: 'CNY' });
    standin.setRefund(t.refundNo, { orderNo: t.orderNo, status: 'refund_success', amount: '5', currency: 'JPY' });
    expect(await refunds.queryRefund(t, signal())).toMatchObject({ state: 'succeeded', amountMinor: 5, currency: 'JPY' });
    standin.setRefund(t.refundNo, { orderNo: t.orderNo, status: 'refund_success', amount: '5.001' });
    expect((await failure(refunds.queryRefund(t, signal()))).kind).toBe('malformed');
    standin.setRefund(t.refundNo, { orderNo: t.orderNo, status: 'refund_success', amount: '0.00', currency: 'CNY' });
    expect((await failure(refunds.queryRefund(t, signal()))).kind).toBe('malformed');
  });

  it('a refund the gateway holds for another order is not found for this one', async () => {
    const t = paidOrder();
    standin.setRefund(t.refundNo, { orderNo: `${t.orderNo}X`, status: 'refund_success', amount: '5.00', currency: 'CNY' });
    expect((await refunds.queryRefund(t, signal())).state).toBe('not_found');
  });

  it('every answer that cannot be trusted is thrown, never settles', async () => {
    const t = paidOrder();
    standin.setRefund(t.refundNo, { orderNo: t.orderNo, status: 'refund_success', amount: '5.00', currency: 'CNY' });
    const cases = [
      ['mis-signed', 'bad_signature'],
      ['unsigned', 'bad_signature'],
      ['garbage', 'malformed'],
      ['stale-timestamp', 'malformed'],
      ['other-order', 'malformed'],
      ['other-refund', 'malformed'],
      ['http-500', 'http_status'],
      ['hang', 'timeout'],
    ] as const;
    for (const [behaviour, kind] of cases) {
      standin.setBehaviour(behaviour, t.orderNo);
      expect((await failure(refunds.queryRefund(t, signal()))).kind, behaviour).toBe(kind);
    }
  });

  it('without a query endpoint it cannot ask: not_configured, nothing sent', async () => {
    const before = standin.requests.length;
    const blind = createGenericRefundClient('generic', SECRET, httpFormTransport(standin.refundUrl, TIMEOUT_MS), null, systemClock);
    expect(await failure(blind.queryRefund(paidOrder(), signal()))).toMatchObject({
      kind: 'not_configured',
      message: expect.stringContaining('GENERIC_QUERY_URL'),
    });
    expect(standin.requests.length).toBe(before);
  });
});

describe('createRefundClients', () => {
  const TEST_SECRETS = { GATEWAY_SECRET: SECRET };
  const configOf = (env: Record<string, string>) => ({ ...loadConfig({ NOTIFY_TIMEOUT_MS: String(TIMEOUT_MS), ...env }), secrets: TEST_SECRETS as never });

  it('builds the generic client from GENERIC_REFUND_URL, asking at GENERIC_QUERY_URL', async () => {
    const made = createRefundClients(configOf({ GENERIC_REFUND_URL: standin.refundUrl, GENERIC_QUERY_URL: standin.url }), systemClock, {}, null);
    expect(Object.keys(made)).toEqual(['generic']);
    const t = paidOrder();
    expect((await made.generic!.refund(t, signal())).state).toBe('pending');
    expect(lastRequest('refund')).toMatchObject({ signed: true, refundNo: t.refundNo });
    expect((await made.generic!.queryRefund(t, signal())).state).toBe('pending');
  });

  it('no generic client without GENERIC_REFUND_URL; without GENERIC_QUERY_URL it refunds but cannot ask', async () => {
    expect(createRefundClients(configOf({ GENERIC_QUERY_URL: standin.url }), systemClock, {}, null)).toEqual({});
    const blind = createRefundClients(configOf({ GENERIC_REFUND_URL: standin.refundUrl }), systemClock, {}, null).generic!;
    expect((await blind.refund(paidOrder(), signal())).state).toBe('pending');
    expect((await failure(blind.queryRefund(paidOrder(), signal()))).kind).toBe('not_configured');
  });

  it('the sandbox speaks the protocol through the given transports; the real gateways bring their own', async () => {
    const seen: string[] = [];
    const sandbox = {
      refund: (async (form) => (seen.push(`refund ${form.refund_no}`), { status: 200, body: '{}' })) as QueryTransport,
      query: (async (form) => (seen.push(`query ${form.refund_no}`), { status: 503, body: '' })) as QueryTransport,
    };
    const alipayRefunds = { refund: async () => ({}) as never, queryRefund: async () => ({}) as never } satisfies RefundClient;
    const clients = {
      alipay: { gateway: 'alipay', query: async () => ({}) as never, refunds: alipayRefunds } satisfies GatewayClient,
      stripe: { gateway: 'stripe', query: async () => ({}) as never } satisfies GatewayClient,
    };
    const made = createRefundClients(configOf({}), systemClock, clients, sandbox);
    expect(Object.keys(made).sort()).toEqual(['alipay', 'sandbox']);
    expect(made.alipay).toBe(alipayRefunds);
    const t = paidOrder();
    expect((await made.sandbox!.refund(t, signal())).state).toBe('pending');
    expect((await failure(made.sandbox!.queryRefund(t, signal()))).kind).toBe('http_status');
    expect(seen).toEqual([`refund ${t.refundNo}`, `query ${t.refundNo}`]);
  });
});

/** A local port nobody listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
