import Stripe from 'stripe';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createStripeGateway } from '../src/callbacks/gateways/stripe.ts';
import type { GatewayClient, QueryAnswer, QueryTarget } from '../src/reconcile/gateway-client.ts';
import { createStripeClient, parseStripeApiBase, stripeSearchQuery } from '../src/reconcile/clients/stripe.client.ts';
import { STRIPE_STANDIN_KEYS, startStripeStandin, type StripeStandin } from './helpers/stripe-standin.ts';
import { failure, stripeClient } from './helpers/gateway-call.ts';

let standin: StripeStandin;
let client: GatewayClient;
const TIMEOUT_MS = 400;
let seq = 0;

beforeAll(async () => {
  standin = await startStripeStandin();
  client = stripeClient(standin.url, TIMEOUT_MS);
});
afterAll(() => standin.close());
afterEach(() => standin.setBehaviour('normal'));

const target = (orderNo: string, reference?: string): QueryTarget => ({ orderNo, amountMinor: 1234, currency: 'USD', createdAt: new Date(), reference });
const newOrderNo = () => `ST${Date.now().toString(36)}_${++seq}`;
const signal = () => new AbortController().signal;
const requestsSince = (n: number) => standin.requests.slice(n);
const query = (orderNo: string, reference?: string) => client.query(target(orderNo, reference), signal());

function paid(answer: QueryAnswer) {
  if (answer.state !== 'paid') throw new Error(`expected paid, got ${JSON.stringify(answer)}`);
  return answer;
}

describe('Stripe client: query', () => {
  it('finds a succeeded PaymentIntent by metadata search: paid with its id, amount_received in Stripe units and upper-case currency', async () => {
    const orderNo = newOrderNo();
    standin.setTrade(orderNo, { id: 'pi_3PaidSearch0001', status: 'succeeded', amount: 1234, currency: 'usd' });
    const before = standin.requests.length;
    const answer = paid(await query(orderNo));
    expect(answer).toMatchObject({ state: 'paid', transactionId: 'pi_3PaidSearch0001', amount: { kind: 'decimal', value: '12.34' }, currency: 'USD' });
    expect(answer.mismatch).toBeUndefined();
    expect(answer.fields).toMatchObject({ id: 'pi_3PaidSearch0001', status: 'succeeded', amount_received: 1234, metadata: { order_no: orderNo } });
    expect(JSON.stringify(answer.fields)).not.toContain('secret');
    const sent = requestsSince(before);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.method).toBe('GET');
    // The exact form the SDK sends: the query language in one form-encoded parameter, with its brackets left bare.
    expect(sent[0]!.url).toBe(`/v1/payment_intents/search?query=metadata[%27order_no%27]%3A%27${orderNo}%27&limit=100`);
    expect(sent[0]!.headers.authorization).toBe(`Bearer ${STRIPE_STANDIN_KEYS.secretKey}`);
    expect(sent[0]!.headers['stripe-version']).toMatch(/^\d{4}-\d{2}-\d{2}\.\w+$/);
    expect(sent[0]!.authorized).toBe(true);
  });

  it('states the amount as the webhook adapter does for the same PaymentIntent (USD, JPY, KWD, ISK)', async () => {
    const secret = 'whsec_test_reconcile_cross_check_0123456789';
    const adapter = createStripeGateway({ webhookSecret: secret });
    const sdk = new Stripe('sk_test_offline_only');
    for (const [currency, amount] of [
      ['usd', 1234],
      ['jpy', 1234],
      ['kwd', 12345],
      ['isk', 150000],
    ] as const) {
      const orderNo = newOrderNo();
      const [id] = standin.setTrade(orderNo, { status: 'succeeded', amount, currency });
      const answer = paid(await query(orderNo));
      const payload = JSON.stringify({ id: `evt_${id}`, object: 'event', type: 'payment_intent.succeeded', data: { object: standin.intent(id!) } });
      const header = sdk.webhooks.generateTestHeaderString({ payload, secret });
      const verified = await adapter.verify({ params: {}, rawBody: Buffer.from(payload), headers: { 'stripe-signature': header }, now: new Date() });
      if (verified.ok !== true) throw new Error(`adapter refused: ${JSON.stringify(verified)}`);
      expect({ transactionId: answer.transactionId, amount: answer.amount, currency: answer.currency }).toEqual({
        transactionId: verified.result.transactionId,
        amount: verified.result.amount,
        currency: verified.result.currency,
      });
    }
  });

  it('retrieves the remembered PaymentIntent first; when it succeeded no search is made', async () => {
    const orderNo = newOrderNo();
    const [id] = standin.setTrade(orderNo, { status: 'succeeded', amount: 1234 });
    const before = standin.requests.length;
    expect(paid(await query(orderNo, id)).transactionId).toBe(id);
    expect(requestsSince(before).map((r) => `${r.method} ${r.url}`)).toEqual([`GET /v1/payment_intents/${id}`]);
  });

  it('a remembered intent whose attempt failed does not hide another intent that succeeded (the lost callback)', async () => {
    const orderNo = newOrderNo();
    const [failedId, paidId] = standin.setTrade(orderNo, [
      { status: 'requires_payment_method', declined: true },
      { status: 'succeeded', amount: 1234 },
    ]);
    const before = standin.requests.length;
    expect(paid(await query(orderNo, failedId)).transactionId).toBe(paidId);
    expect(requestsSince(before).map((r) => r.url.split('?')[0])).toEqual([`/v1/payment_intents/${failedId}`, '/v1/payment_intents/search']);
  });

  it('takes the remembered intent as ours when its metadata names no order (a Checkout session named the order)', async () => {
    const orderNo = newOrderNo();
    const [id] = standin.setTrade(orderNo, { status: 'succeeded', metadataOrderNo: null });
    expect(paid(await query(orderNo, id)).transactionId).toBe(id);
  });

  it('never takes an intent whose metadata.order_no names another order, remembered or found', async () => {
    const orderNo = newOrderNo();
    const other = newOrderNo();
    const [foreign] = standin.setTrade(other, { status: 'succeeded' });
    expect(await query(orderNo, foreign)).toMatchObject({ state: 'not_found', gatewayStatus: 'no_payment_intent' });
    // A search that answers about every order still yields only this order's intents.
    standin.setTrade(orderNo, { status: 'processing' });
    standin.setBehaviour('search-ignores-query');
    const answer = await query(orderNo);
    expect(answer).toMatchObject({ state: 'pending', gatewayStatus: 'processing' });
    expect((answer.fields.payment_intents as unknown[]).length).toBe(1);
  });

  it('a remembered id Stripe does not know (404 resource_missing) falls back to the search', async () => {
    const orderNo = newOrderNo();
    standin.setTrade(orderNo, { status: 'succeeded', id: 'pi_3FoundBySearch01' });
    expect(paid(await query(orderNo, 'pi_3NeverExisted00')).transactionId).toBe('pi_3FoundBySearch01');
  });

  it('not paid yet → pending, with the status of the live intent', async () => {
    for (const status of ['requires_payment_method', 'requires_action', 'requires_confirmation', 'requires_capture', 'processing'] as const) {
      const orderNo = newOrderNo();
      standin.setTrade(orderNo, { status });
      expect(await query(orderNo)).toMatchObject({ state: 'pending', gatewayStatus: status });
    }
  });

  it('a declined attempt → failed; a declined attempt beside a live one → pending', async () => {
    const orderNo = newOrderNo();
    standin.setTrade(orderNo, { status: 'requires_payment_method', declined: true });
    const answer = await query(orderNo);
    expect(answer).toMatchObject({ state: 'failed', gatewayStatus: 'requires_payment_method' });
    expect(answer.fields.payment_intents).toEqual([expect.objectContaining({ last_payment_error: expect.objectContaining({ code: 'card_declined' }) })]);
    standin.setTrade(orderNo, [{ status: 'requires_payment_method', declined: true }, { status: 'processing' }]);
    expect(await query(orderNo)).toMatchObject({ state: 'pending', gatewayStatus: 'processing' });
  });

  it('every intent canceled → closed; none → not_found', async () => {
    const orderNo = newOrderNo();
    standin.setTrade(orderNo, [{ status: 'canceled' }, { status: 'canceled' }]);
    expect(await query(orderNo)).toMatchObject({ state: 'closed', gatewayStatus: 'canceled' });
    expect(await query(newOrderNo())).toMatchObject({ state: 'not_found', gatewayStatus: 'no_payment_intent', fields: { payment_intents: [] } });
  });

  it('any succeeded intent wins over canceled and failed ones', async () => {
    const orderNo = newOrderNo();
    const [, id] = standin.setTrade(orderNo, [
      { status: 'canceled' },
      { status: 'succeeded', amount: 1234 },
      { status: 'requires_payment_method', declined: true },
    ]);
    expect(paid(await query(orderNo)).transactionId).toBe(id);
  });

  it('follows the search pages (100 a page) until it has every intent', async () => {
    const orderNo = newOrderNo();
    const specs = Array.from({ length: 150 }, (_, i) => ({ status: 'canceled' as const, created: 1_760_000_000 - i }));
    const ids = standin.setTrade(orderNo, [...specs, { status: 'succeeded', created: 1_700_000_000 }]);
    const before = standin.requests.length;
    expect(paid(await query(orderNo)).transactionId).toBe(ids[150]);
    const sent = requestsSince(before).map((r) => r.url);
    expect(sent).toHaveLength(2);
    expect(sent[1]).toContain('&page=page_100');
  });

  it('a payment answered in live mode to a test key is paid with a mismatch', async () => {
    const orderNo = newOrderNo();
    standin.setTrade(orderNo, { status: 'succeeded', livemode: true });
    expect(paid(await query(orderNo)).mismatch).toBe('livemode true does not match the test secret key');
  });
});

describe('Stripe client: failures', () => {
  it('the stand-in refuses a wrong or missing key with 401 in Stripe error shape, and accepts the right one (checked without the client)', async () => {
    const url = `${standin.url}/v1/payment_intents/search?query=${encodeURIComponent("metadata['order_no']:'X'")}`;
    const version = { 'Stripe-Version': '2026-10-28.endive' };
    for (const headers of [{ ...version, Authorization: `Bearer ${STRIPE_STANDIN_KEYS.otherSecretKey}` }, version]) {
      const res = await fetch(url, { headers });
      expect(res.status).toBe(401);
      const body = (await res.json()) as { error: { type: string; message: string } };
      expect(body.error.type).toBe('invalid_request_error');
      expect(body.error.message).not.toContain(STRIPE_STANDIN_KEYS.otherSecretKey);
    }
    const ok = await fetch(url, { headers: { ...version, Authorization: `Bearer ${STRIPE_STANDIN_KEYS.secretKey}` } });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ object: 'search_result', data: [], has_more: false });
    const noVersion = await fetch(url, { headers: { Authorization: `Bearer ${STRIPE_STANDIN_KEYS.secretKey}` } });
    expect(noVersion.status).toBe(400);
  });

  it('a client with another account key is refused: http_status 401, and the stand-in recorded it as unauthorized', async () => {
    const wrong = stripeClient(standin.url, TIMEOUT_MS, STRIPE_STANDIN_KEYS.otherSecretKey);
    const orderNo = newOrderNo();
    standin.setTrade(orderNo, { status: 'succeeded' });
    const before = standin.requests.length;
    const err = await failure(wrong.query(target(orderNo), signal()));
    expect(err.kind).toBe('http_status');
    expect(err.message).toContain('401');
    expect(err.message).not.toContain(STRIPE_STANDIN_KEYS.otherSecretKey);
    expect(requestsSince(before).map((r) => r.authorized)).toEqual([false]);
    const closeErr = await failure(wrong.close!(target(orderNo), signal()));
    expect(closeErr.kind).toBe('http_status');
  });

  it('garbage → malformed with an excerpt; JSON without status and amounts → malformed', async () => {
    const orderNo = newOrderNo();
    standin.setTrade(orderNo, { status: 'succeeded' });
    standin.setBehaviour('garbage');
    const err = await failure(query(orderNo));
    expect(err.kind).toBe('malformed');
    expect(err.excerpt).toContain('<html>');
    standin.setBehaviour('incomplete');
    expect((await failure(query(orderNo))).kind).toBe('malformed');
  });

  it('HTTP 500 → http_status, made once (the reconciler retries, not the SDK)', async () => {
    const orderNo = newOrderNo();
    standin.setBehaviour('http-500');
    const before = standin.requests.length;
    const err = await failure(query(orderNo));
    expect(err.kind).toBe('http_status');
    expect(err.message).toContain('500');
    expect(requestsSince(before)).toHaveLength(1);
  });

  it('hang → timeout within the configured timeout', async () => {
    standin.setBehaviour('hang');
    const started = Date.now();
    const err = await failure(query(newOrderNo()));
    expect(err.kind).toBe('timeout');
    expect(Date.now() - started).toBeGreaterThanOrEqual(TIMEOUT_MS - 50);
    expect(Date.now() - started).toBeLessThan(TIMEOUT_MS + 1500);
  });

  it('an aborted signal stops the call at once, before or while it waits', async () => {
    const before = standin.requests.length;
    const aborted = AbortSignal.abort();
    expect((await failure(client.query(target(newOrderNo()), aborted))).kind).toBe('network');
    expect(requestsSince(before)).toHaveLength(0);
    standin.setBehaviour('hang');
    const slow = stripeClient(standin.url, 10_000);
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 100);
    const err = await failure(slow.query(target(newOrderNo()), controller.signal));
    expect(err.kind).toBe('network');
    expect(err.message).toContain('aborted');
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('nothing listening → network', async () => {
    const gone = await startStripeStandin();
    await gone.close();
    const dead = stripeClient(gone.url, TIMEOUT_MS);
    expect((await failure(dead.query(target(newOrderNo()), signal()))).kind).toBe('network');
  });
});

describe('Stripe client: close', () => {
  it('cancels every cancelable intent of the order (cancellation_reason abandoned) and leaves canceled ones alone', async () => {
    const orderNo = newOrderNo();
    const [a, b, c] = standin.setTrade(orderNo, [{ status: 'requires_payment_method' }, { status: 'requires_action' }, { status: 'canceled' }]);
    const before = standin.requests.length;
    const evidence = await client.close!(target(orderNo), signal());
    const posts = requestsSince(before).filter((r) => r.method === 'POST');
    expect(posts.map((r) => r.url).sort()).toEqual([`/v1/payment_intents/${a}/cancel`, `/v1/payment_intents/${b}/cancel`].sort());
    expect(posts.every((r) => r.body === 'cancellation_reason=abandoned' && r.authorized)).toBe(true);
    expect(standin.intent(a!)!.status).toBe('canceled');
    expect(standin.intent(b!)!.status).toBe('canceled');
    expect((evidence.fields.canceled as { id: string }[]).map((i) => i.id).sort()).toEqual([a, b].sort());
    expect(evidence.fields.already_canceled).toEqual([c]);
    expect(await query(orderNo)).toMatchObject({ state: 'closed' });
  });

  it('close of an order Stripe does not know resolves without cancelling anything', async () => {
    const before = standin.requests.length;
    const evidence = await client.close!(target(newOrderNo()), signal());
    expect(evidence.fields).toMatchObject({ canceled: [], already_canceled: [] });
    expect(requestsSince(before).filter((r) => r.method === 'POST')).toHaveLength(0);
  });

  it('close of a paid order → refused, and nothing is cancelled', async () => {
    const orderNo = newOrderNo();
    const [open, paidId] = standin.setTrade(orderNo, [{ status: 'requires_payment_method' }, { status: 'succeeded' }]);
    const before = standin.requests.length;
    const err = await failure(client.close!(target(orderNo), signal()));
    expect(err.kind).toBe('refused');
    expect(err.message).toContain(paidId);
    expect(requestsSince(before).filter((r) => r.method === 'POST')).toHaveLength(0);
    expect(standin.intent(open!)!.status).toBe('requires_payment_method');
  });

  it('an intent Stripe will not cancel (processing) → refused with Stripe’s answer as excerpt', async () => {
    const orderNo = newOrderNo();
    standin.setTrade(orderNo, { status: 'processing' });
    const err = await failure(client.close!(target(orderNo), signal()));
    expect(err.kind).toBe('refused');
    expect(err.excerpt).toContain('payment_intent_unexpected_state');
  });

  it('close failures keep their kinds: 500 → http_status, hang → timeout', async () => {
    standin.setBehaviour('http-500');
    expect((await failure(client.close!(target(newOrderNo()), signal()))).kind).toBe('http_status');
    standin.setBehaviour('hang');
    expect((await failure(client.close!(target(newOrderNo()), signal()))).kind).toBe('timeout');
  });
});

describe('Stripe client: configuration', () => {
  it('parses STRIPE_API_BASE into the SDK host, port and protocol', () => {
    expect(parseStripeApiBase('https://api.stripe.com')).toEqual({ host: 'api.stripe.com', port: 443, protocol: 'https' });
    expect(parseStripeApiBase('http://127.0.0.1:12111/')).toEqual({ host: '127.0.0.1', port: 12111, protocol: 'http' });
    expect(parseStripeApiBase('https://[::1]:8443')).toEqual({ host: '::1', port: 8443, protocol: 'https' });
    for (const bad of ['ftp://api.stripe.com', 'https://api.stripe.com/v1', 'https://user:pw@api.stripe.com', 'not a url'])
      expect(() => parseStripeApiBase(bad)).toThrow(/STRIPE_API_BASE/);
  });

  it('refuses a key that is not a Stripe secret or restricted key, naming the setting', () => {
    for (const secretKey of ['', 'pk_test_abc', 'whsec_abc'])
      expect(() => createStripeClient({ secretKey, apiBase: standin.url, timeoutMs: 1000 })).toThrow(/^STRIPE_SECRET_KEY/);
  });

  it('escapes quotes and backslashes in the search query, and the stand-in reads them back', async () => {
    expect(stripeSearchQuery("it's\\x")).toBe("metadata['order_no']:'it\\'s\\\\x'");
    const odd = "O'Brien\\1";
    standin.setTrade(odd, { status: 'processing' });
    expect(await query(odd)).toMatchObject({ state: 'pending' });
  });
});
