import { createHmac } from 'node:crypto';
import type { Response } from 'express';
import request from 'supertest';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CallbackOutcome, Verification } from '../src/callbacks/gateways/gateway.ts';
import { createStripeGateway, parseSignatureHeader, STRIPE_TOLERANCE_S } from '../src/callbacks/gateways/stripe.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';

const SECRET = 'whsec_test_0123456789abcdefABCDEF0123456789';
const OTHER_SECRET = 'whsec_test_another_endpoint_secret_987654';

/** The official SDK signs every test event and cross-checks what the adapter accepts. No request leaves the process. */
const stripe = new Stripe('sk_test_not_used_offline');
const gateway = createStripeGateway({ webhookSecret: SECRET });

const nowS = () => Math.floor(Date.now() / 1000);
let eventSeq = 0;

/** A Stripe event body as Stripe sends it: pretty-printed JSON, two-space indent, so the raw bytes matter. */
function eventPayload(type: string, object: Record<string, unknown>, id = `evt_test_${++eventSeq}_${Date.now().toString(36)}`): string {
  return JSON.stringify(
    {
      id,
      object: 'event',
      api_version: '2025-06-30.basil',
      created: nowS(),
      data: { object },
      livemode: false,
      pending_webhooks: 1,
      request: { id: null, idempotency_key: null },
      type,
    },
    null,
    2,
  );
}

function session(orderNo: string | null, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: `cs_test_${orderNo ?? 'none'}_a1B2c3`,
    object: 'checkout.session',
    amount_subtotal: 1234,
    amount_total: 1234,
    client_reference_id: orderNo,
    currency: 'usd',
    metadata: {},
    mode: 'payment',
    payment_intent: `pi_${orderNo ?? 'none'}`,
    payment_status: 'paid',
    status: 'complete',
    ...extra,
  };
}

function intent(orderNo: string | null, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: `pi_${orderNo ?? 'none'}`,
    object: 'payment_intent',
    amount: 1234,
    amount_received: 1234,
    currency: 'usd',
    metadata: orderNo === null ? {} : { order_no: orderNo },
    status: 'succeeded',
    ...extra,
  };
}

const sign = (payload: string, options: { secret?: string; timestamp?: number } = {}) =>
  stripe.webhooks.generateTestHeaderString({ payload, secret: options.secret ?? SECRET, timestamp: options.timestamp });

async function verify(payload: string | Buffer, signature: string | undefined, now = new Date()): Promise<Verification> {
  const rawBody = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  let params: Record<string, unknown> = {};
  try {
    params = JSON.parse(rawBody.toString('utf8')) as Record<string, unknown>;
  } catch {
    // a body the JSON parser refused has no params
  }
  const headers = signature === undefined ? {} : { 'stripe-signature': signature };
  return gateway.verify({ params, rawBody, headers, now });
}

function expectRejected(v: Verification, verdict: string, code: string) {
  expect(v.ok).toBe(false);
  if (v.ok !== false) return;
  expect(v.rejection).toMatchObject({ verdict, code });
  expect(v.rejection.message).not.toContain(SECRET);
}

function expectResult(v: Verification) {
  expect(v.ok).toBe(true);
  if (v.ok !== true) throw new Error(`not verified: ${JSON.stringify(v)}`);
  return v.result;
}

/** What Stripe's own library says of the same bytes and header (receivedAt in ms). */
function sdkAccepts(payload: string | Buffer, header: string, secret = SECRET, receivedAt?: number): boolean {
  try {
    stripe.webhooks.constructEvent(payload, header, secret, undefined, undefined, receivedAt);
    return true;
  } catch (err) {
    if (err instanceof Stripe.errors.StripeSignatureVerificationError) return false;
    throw err;
  }
}

describe('Stripe adapter: Stripe-Signature verification', () => {
  it('accepts a header the SDK generated, over the exact body, and the SDK accepts the same', async () => {
    const payload = eventPayload('checkout.session.completed', session('S1'));
    const header = sign(payload);
    expect(header).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(sdkAccepts(payload, header)).toBe(true);
    expect(expectResult(await verify(payload, header)).orderNo).toBe('S1');
  });

  it('accepts any matching v1 among several (secret roll), ignoring v0 and unknown schemes', async () => {
    const payload = eventPayload('payment_intent.succeeded', intent('S2'));
    const t = nowS();
    const good = parseSignatureHeader(sign(payload, { timestamp: t }))!.v1[0]!;
    const stale = parseSignatureHeader(sign(payload, { timestamp: t, secret: OTHER_SECRET }))!.v1[0]!;
    for (const header of [
      `t=${t},v1=${stale},v1=${good}`,
      `t=${t},v1=${good},v1=${stale}`,
      `t=${t},v0=${'0'.repeat(64)},v1=${stale},v1=${good},x9=foo`,
      `v1=${good},t=${t}`,
    ]) {
      expect(sdkAccepts(payload, header)).toBe(true);
      expect((await verify(payload, header)).ok).toBe(true);
    }
  });

  it('refuses a header where no v1 matches, and a v0-only header', async () => {
    const payload = eventPayload('payment_intent.succeeded', intent('S3'));
    const t = nowS();
    const other = parseSignatureHeader(sign(payload, { timestamp: t, secret: OTHER_SECRET }))!.v1[0]!;
    const good = parseSignatureHeader(sign(payload, { timestamp: t }))!.v1[0]!;
    for (const header of [
      `t=${t},v1=${other}`,
      `t=${t},v1=${other},v1=${'f'.repeat(64)}`,
      `t=${t},v0=${good}`,
      `t=${t},v1=${good.slice(0, 63)}`,
      `t=${t},v1=${good}00`,
    ]) {
      expect(sdkAccepts(payload, header)).toBe(false);
      expectRejected(await verify(payload, header), 'bad_signature', 'bad_signature');
    }
  });

  it('binds the timestamp into the signature: a v1 moved to another t does not match', async () => {
    const payload = eventPayload('payment_intent.succeeded', intent('S4'));
    const t = nowS();
    const good = parseSignatureHeader(sign(payload, { timestamp: t }))!.v1[0]!;
    const header = `t=${t - 1},v1=${good}`;
    expect(sdkAccepts(payload, header)).toBe(false);
    expectRejected(await verify(payload, header), 'bad_signature', 'bad_signature');
  });

  it(`refuses a timestamp more than ${STRIPE_TOLERANCE_S} s old as replayed, accepts one within tolerance (as the SDK does)`, async () => {
    const payload = eventPayload('payment_intent.succeeded', intent('S5'));
    const now = new Date();
    const t = Math.floor(now.getTime() / 1000);
    const stale = sign(payload, { timestamp: t - STRIPE_TOLERANCE_S - 1 });
    expect(sdkAccepts(payload, stale, SECRET, now.getTime())).toBe(false);
    expectRejected(await verify(payload, stale, now), 'replayed', 'replayed');
    const recent = sign(payload, { timestamp: t - STRIPE_TOLERANCE_S + 1 });
    expect(sdkAccepts(payload, recent, SECRET, now.getTime())).toBe(true);
    expect((await verify(payload, recent, now)).ok).toBe(true);
    const edge = sign(payload, { timestamp: t - STRIPE_TOLERANCE_S });
    expect((await verify(payload, edge, now)).ok).toBe(true);
  });

  it('also refuses a timestamp more than 300 s in the future (the SDK checks only age)', async () => {
    const payload = eventPayload('payment_intent.succeeded', intent('S6'));
    const now = new Date();
    const t = Math.floor(now.getTime() / 1000);
    expectRejected(await verify(payload, sign(payload, { timestamp: t + STRIPE_TOLERANCE_S + 1 }), now), 'replayed', 'replayed');
    expect((await verify(payload, sign(payload, { timestamp: t + 60 }), now)).ok).toBe(true);
  });

  it('checks the signature before the timestamp: a stale forged request is a bad signature', async () => {
    const payload = eventPayload('payment_intent.succeeded', intent('S7'));
    const header = sign(payload, { timestamp: nowS() - 3600, secret: OTHER_SECRET });
    expectRejected(await verify(payload, header), 'bad_signature', 'bad_signature');
  });

  it('refuses a tampered body, including one re-serialized with the same meaning', async () => {
    const payload = eventPayload('payment_intent.succeeded', intent('S8'));
    const header = sign(payload);
    const tampered = payload.replace('"amount_received": 1234', '"amount_received": 1');
    expect(tampered).not.toBe(payload);
    expect(sdkAccepts(tampered, header)).toBe(false);
    expectRejected(await verify(tampered, header), 'bad_signature', 'bad_signature');
    const compact = JSON.stringify(JSON.parse(payload));
    expect(sdkAccepts(compact, header)).toBe(false);
    expectRejected(await verify(compact, header), 'bad_signature', 'bad_signature');
    const trailing = `${payload}\n`;
    expectRejected(await verify(trailing, header), 'bad_signature', 'bad_signature');
  });

  it('verifies the raw bytes: non-ASCII text in the body is signed as UTF-8', async () => {
    const payload = eventPayload('payment_intent.succeeded', intent('S9', { description: 'Bestellung für 東京 ✓' }));
    const header = sign(payload);
    expect(sdkAccepts(Buffer.from(payload), header)).toBe(true);
    expect((await verify(Buffer.from(payload, 'utf8'), header)).ok).toBe(true);
    // The same text as Latin-1 bytes is a different body.
    expectRejected(await verify(Buffer.from(payload, 'latin1'), header), 'bad_signature', 'bad_signature');
  });

  it('refuses a signature made with another secret', async () => {
    const payload = eventPayload('checkout.session.completed', session('S10'));
    const header = sign(payload, { secret: OTHER_SECRET });
    expect(sdkAccepts(payload, header)).toBe(false);
    expectRejected(await verify(payload, header), 'bad_signature', 'bad_signature');
    // The secret is the HMAC key exactly as written, whsec_ prefix included.
    const manual = createHmac('sha256', SECRET.slice('whsec_'.length)).update(`${nowS()}.${payload}`).digest('hex');
    expectRejected(await verify(payload, `t=${nowS()},v1=${manual}`), 'bad_signature', 'bad_signature');
  });

  it('computes hex(hmac_sha256(secret, "<t>.<body>")) exactly as documented', async () => {
    const payload = eventPayload('checkout.session.completed', session('S11'));
    const t = nowS();
    const manual = createHmac('sha256', SECRET).update(`${t}.${payload}`).digest('hex');
    expect(sign(payload, { timestamp: t })).toBe(`t=${t},v1=${manual}`);
    expect((await verify(payload, `t=${t},v1=${manual}`)).ok).toBe(true);
    expect((await verify(payload, `t=${t},v1=${manual.toUpperCase()}`)).ok).toBe(true);
    expect((await verify(payload, ` t=${t} , v1=${manual} `)).ok).toBe(true);
  });

  it.each([
    ['missing', undefined],
    ['empty', ''],
    ['not a signature', 'not a signature'],
    ['without a timestamp', `v1=${'a'.repeat(64)}`],
    ['without a v1', `t=${nowS()}`],
    ['with a non-numeric timestamp', `t=yesterday,v1=${'a'.repeat(64)}`],
    ['with two timestamps', `t=${nowS()},t=${nowS()},v1=${'a'.repeat(64)}`],
    ['with empty values', 't=,v1='],
  ])('Stripe-Signature %s → bad signature, filed under the claimed order', async (_name, header) => {
    const payload = eventPayload('checkout.session.completed', session('S12'));
    const v = await verify(payload, header);
    expectRejected(v, 'bad_signature', 'bad_signature');
    if (v.ok === false) expect(v.rejection.claimedOrderNo).toBe('S12');
  });

  it('refuses a missing body, and a signed body that is not a JSON object, as malformed', async () => {
    expectRejected(
      await gateway.verify({ params: {}, rawBody: undefined, headers: { 'stripe-signature': `t=${nowS()},v1=${'a'.repeat(64)}` }, now: new Date() }),
      'malformed',
      'validation_failed',
    );
    for (const body of ['{"id": "evt_1", ', '[1,2]', '"text"']) expectRejected(await verify(body, sign(body)), 'malformed', 'validation_failed');
  });
});

describe('Stripe adapter: event mapping', () => {
  async function mapped(type: string, object: Record<string, unknown>, id?: string) {
    const payload = eventPayload(type, object, id);
    return verify(payload, sign(payload));
  }

  it('checkout.session.completed → paid: client_reference_id, payment_intent, amount_total, upper-cased currency, event id', async () => {
    const payload = eventPayload('checkout.session.completed', session('ORDER-1'), 'evt_checkout_1');
    const result = expectResult(await verify(payload, sign(payload)));
    expect(result).toMatchObject({
      orderNo: 'ORDER-1',
      transactionId: 'pi_ORDER-1',
      amount: { kind: 'decimal', value: '12.34' },
      currency: 'USD',
      outcome: 'paid',
      eventKey: 'evt_checkout_1',
    });
    expect(result.fields).toEqual(JSON.parse(payload));
    expect(result.nonce).toBeUndefined();
  });

  it('checkout.session.completed: metadata.order_no names the order, and wins over client_reference_id', async () => {
    const viaMetadata = expectResult(await mapped('checkout.session.completed', session(null, { metadata: { order_no: 'ORDER-2' } })));
    expect(viaMetadata.orderNo).toBe('ORDER-2');
    const both = expectResult(await mapped('checkout.session.completed', session('cus_customer42', { metadata: { order_no: 'ORDER-3' } })));
    expect(both.orderNo).toBe('ORDER-3');
  });

  it('checkout.session.completed without a payment intent uses the session id; an expanded intent gives its id', async () => {
    const noIntent = expectResult(await mapped('checkout.session.completed', session('ORDER-4', { payment_intent: null })));
    expect(noIntent.transactionId).toBe('cs_test_ORDER-4_a1B2c3');
    const expanded = expectResult(
      await mapped('checkout.session.completed', session('ORDER-5', { payment_intent: { id: 'pi_expanded', object: 'payment_intent' } })),
    );
    expect(expanded.transactionId).toBe('pi_expanded');
  });

  it('checkout.session.completed that is not paid yet (delayed method) is ignored; async_payment_succeeded/failed apply', async () => {
    const unpaid = await mapped('checkout.session.completed', session('ORDER-6', { payment_status: 'unpaid' }));
    expect(unpaid).toMatchObject({ ok: 'ignored', claimedOrderNo: 'ORDER-6' });
    const free = await mapped('checkout.session.completed', session('ORDER-6', { payment_status: 'no_payment_required', amount_total: 0 }));
    expect(free.ok).toBe('ignored');
    expect(expectResult(await mapped('checkout.session.async_payment_succeeded', session('ORDER-6')))).toMatchObject({ orderNo: 'ORDER-6', outcome: 'paid' });
    expect(expectResult(await mapped('checkout.session.async_payment_failed', session('ORDER-6', { payment_status: 'unpaid' })))).toMatchObject({
      orderNo: 'ORDER-6',
      outcome: 'failed',
    });
  });

  it('payment_intent.succeeded → paid: metadata.order_no, intent id, amount_received', async () => {
    const result = expectResult(
      await mapped('payment_intent.succeeded', intent('ORDER-7', { amount: 9999, amount_received: 1500, currency: 'eur' }), 'evt_pi_7'),
    );
    expect(result).toMatchObject({
      orderNo: 'ORDER-7',
      transactionId: 'pi_ORDER-7',
      amount: { kind: 'decimal', value: '15.00' },
      currency: 'EUR',
      outcome: 'paid',
      eventKey: 'evt_pi_7',
    });
  });

  it('payment_intent.payment_failed → failed with the intent amount', async () => {
    const result = expectResult(await mapped('payment_intent.payment_failed', intent('ORDER-8', { amount_received: 0, status: 'requires_payment_method' })));
    expect(result).toMatchObject({
      orderNo: 'ORDER-8',
      transactionId: 'pi_ORDER-8',
      amount: { kind: 'decimal', value: '12.34' },
      currency: 'USD',
      outcome: 'failed',
    });
  });

  it('payment_intent events do not take client_reference_id (intents have none)', async () => {
    const v = await mapped('payment_intent.succeeded', { ...intent(null), client_reference_id: 'ORDER-9' });
    expect(v.ok).toBe('ignored');
  });

  it('zero-decimal currencies: JPY amounts are whole yen; three-decimal KWD; ISK is two-decimal in the Stripe API', async () => {
    expect(expectResult(await mapped('payment_intent.succeeded', intent('J1', { amount_received: 5000, currency: 'jpy' }))).amount).toEqual({
      kind: 'decimal',
      value: '5000',
    });
    expect(expectResult(await mapped('checkout.session.completed', session('J2', { amount_total: 1, currency: 'JPY' }))).amount).toEqual({
      kind: 'decimal',
      value: '1',
    });
    expect(expectResult(await mapped('payment_intent.succeeded', intent('K1', { amount_received: 12340, currency: 'kwd' }))).amount).toEqual({
      kind: 'decimal',
      value: '12.340',
    });
    expect(expectResult(await mapped('payment_intent.succeeded', intent('I1', { amount_received: 50000, currency: 'isk' }))).amount).toEqual({
      kind: 'decimal',
      value: '500.00',
    });
    expect(expectResult(await mapped('payment_intent.succeeded', intent('U1', { amount_received: 7, currency: 'usd' }))).amount).toEqual({
      kind: 'decimal',
      value: '0.07',
    });
  });

  it.each(['customer.created', 'charge.succeeded', 'checkout.session.expired', 'invoice.paid', 'payment_intent.created'])(
    '%s is acknowledged and ignored',
    async (type) => {
      const v = await mapped(type, { ...intent('ORDER-10'), object: type.split('.')[0] });
      expect(v).toMatchObject({ ok: 'ignored', claimedOrderNo: 'ORDER-10', fields: { type, data: { object: { metadata: { order_no: 'ORDER-10' } } } } });
      if (v.ok === 'ignored') expect(v.message).toContain(type);
    },
  );

  it('a handled event that names no order is not one of ours: ignored (a 4xx would make Stripe retry it for days)', async () => {
    for (const v of [
      await mapped('payment_intent.succeeded', intent(null)),
      await mapped('payment_intent.payment_failed', intent(null, { metadata: { order_no: '' } })),
      await mapped('checkout.session.completed', session(null)),
      await mapped('checkout.session.completed', session('', { metadata: { other: 'x' } })),
    ]) {
      expect(v.ok).toBe('ignored');
      if (v.ok === 'ignored') expect(v.message).toMatch(/names no order/);
    }
  });

  it.each([
    ['an order number that is not ours', 'payment_intent.succeeded', intent('bad order!')],
    ['a non-string order number', 'payment_intent.succeeded', intent(null, { metadata: { order_no: 42 } })],
    ['a missing amount', 'checkout.session.completed', session('M1', { amount_total: null })],
    ['a fractional amount', 'payment_intent.succeeded', intent('M2', { amount_received: 12.5 })],
    ['a negative amount', 'payment_intent.succeeded', intent('M3', { amount_received: -1 })],
    ['a string amount', 'payment_intent.succeeded', intent('M4', { amount_received: '1234' })],
    ['a missing currency', 'payment_intent.succeeded', intent('M5', { currency: null })],
    ['a bad currency', 'payment_intent.succeeded', intent('M6', { currency: 'us dollars' })],
    ['a missing intent id', 'payment_intent.succeeded', intent('M7', { id: null })],
    ['a different object type', 'payment_intent.succeeded', intent('M8', { object: 'charge' })],
  ])('refuses a handled event with %s as malformed', async (_name, type, object) => {
    expectRejected(await mapped(type, object), 'malformed', 'validation_failed');
  });

  it('refuses an event without id, type or data.object as malformed', async () => {
    for (const body of [
      { type: 'payment_intent.succeeded', data: { object: intent('X') } },
      { id: 'evt_1', data: { object: intent('X') } },
      { id: 'evt_1', type: 'payment_intent.succeeded', data: {} },
    ]) {
      const payload = JSON.stringify(body);
      expectRejected(await verify(payload, sign(payload)), 'malformed', 'validation_failed');
    }
  });
});

describe('Stripe adapter: acknowledgements', () => {
  function ack(outcome: Partial<CallbackOutcome> & Pick<CallbackOutcome, 'verdict' | 'status'>) {
    const sent: { status?: number; body?: unknown } = {};
    const res = {
      status(code: number) {
        sent.status = code;
        return this;
      },
      json(body: unknown) {
        sent.body = body;
        return this;
      },
    };
    gateway.acknowledge(res as unknown as Response, { message: 'the message', ...outcome });
    return sent;
  }

  it.each([
    ['applied', 200],
    ['duplicate', 200],
    ['ignored', 200],
  ] as const)('%s → 200 {"received":true}', (verdict, status) => {
    expect(ack({ verdict, status })).toEqual({ status: 200, body: { received: true } });
  });

  it.each([
    ['bad_signature', 401, 'bad_signature', 400],
    ['replayed', 409, 'replayed', 400],
    ['malformed', 400, 'validation_failed', 400],
    ['amount_mismatch', 409, 'amount_mismatch', 409],
    ['unknown_order', 404, 'not_found', 404],
    ['invalid_state', 409, 'invalid_state', 409],
    ['forbidden', 403, 'forbidden', 403],
    ['applied', 503, 'unavailable', 503],
    ['malformed', 503, 'unavailable', 503],
  ] as const)('%s (contract %d %s) → %d {"error":…}', (verdict, status, code, expected) => {
    expect(ack({ verdict, status, code })).toEqual({ status: expected, body: { error: 'the message' } });
  });
});

describe.each(ENGINES)('POST /notify/stripe on %s', (engine) => {
  let ctx: TestContext;
  let seq = 0;
  beforeAll(async () => {
    ctx = await createTestContext(engine, { env: { STRIPE_WEBHOOK_SECRET: SECRET } });
  });
  afterAll(() => ctx.close());

  async function order(amount = '12.34', currency = 'USD'): Promise<string> {
    const order_no = `ST${++seq}_${engine}`;
    const res = await ctx
      .api('post', '/api/orders')
      .send({ order_no, amount, currency, payment_method: 'stripe', notify_url: 'https://merchant.example/notify' });
    expect(res.status).toBe(201);
    return order_no;
  }
  const deliver = (payload: string, header = sign(payload)) =>
    request(ctx.app).post('/notify/stripe').set('Content-Type', 'application/json; charset=utf-8').set('Stripe-Signature', header).send(payload);
  const orderRow = (order_no: string) => ctx.db.kysely.selectFrom('orders').selectAll().where('order_no', '=', order_no).executeTakeFirstOrThrow();
  const logs = (order_no: string) => ctx.db.kysely.selectFrom('payment_logs').selectAll().where('order_no', '=', order_no).orderBy('id').execute();
  const events = (order_no: string) => ctx.db.kysely.selectFrom('notifications').selectAll().where('order_no', '=', order_no).orderBy('seq').execute();

  async function expectUnchanged(no: string) {
    expect(await orderRow(no)).toMatchObject({ status: 'pending', transaction_id: null, seq: 0 });
    expect(await events(no)).toHaveLength(0);
  }

  it('checkout.session.completed → 200 {"received":true}, order paid, payment log, outbox event', async () => {
    const no = await order();
    const payload = eventPayload('checkout.session.completed', session(no), `evt_cs_${no}`);
    const res = await deliver(payload);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body).toEqual({ received: true });
    const row = await orderRow(no);
    expect(row).toMatchObject({ status: 'paid', transaction_id: `pi_${no}`, seq: 1, flagged: 0 });
    expect(row.paid_at).not.toBeNull();
    const [log] = await logs(no);
    expect(log).toMatchObject({
      gateway: 'stripe',
      kind: 'notify',
      verdict: 'applied',
      transaction_id: `pi_${no}`,
      amount_minor: 1234,
      currency: 'USD',
      status: 'paid',
    });
    expect(log!.callback_data).toBe(payload);
    expect(log!.payment_data).toContain(`evt_cs_${no}`);
    expect(log!.callback_data).not.toContain(SECRET);
    expect(log!.payment_data).not.toContain(SECRET);
    const [event] = await events(no);
    expect(event).toMatchObject({ type: 'order.paid', seq: 1 });
    expect(JSON.parse(event!.payload)).toMatchObject({ order_no: no, transaction_id: `pi_${no}`, amount: '12.34', currency: 'USD', status: 'paid' });
  });

  it('payment_intent.succeeded pays another order, here in JPY (zero-decimal)', async () => {
    const no = await order('5000', 'JPY');
    const res = await deliver(eventPayload('payment_intent.succeeded', intent(no, { amount: 5000, amount_received: 5000, currency: 'jpy' })));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ received: true });
    expect(await orderRow(no)).toMatchObject({ status: 'paid', transaction_id: `pi_${no}`, amount_minor: 5000, currency: 'JPY' });
    expect((await logs(no)).map((l) => [l.verdict, l.amount_minor, l.currency])).toEqual([['applied', 5000, 'JPY']]);
  });

  it('payment_intent.payment_failed → order failed; a later success on the same intent pays it', async () => {
    const no = await order();
    const failed = await deliver(eventPayload('payment_intent.payment_failed', intent(no, { amount_received: 0, status: 'requires_payment_method' })));
    expect(failed.status).toBe(200);
    expect(failed.body).toEqual({ received: true });
    expect(await orderRow(no)).toMatchObject({ status: 'failed', seq: 1 });
    expect((await events(no)).map((e) => e.type)).toEqual(['order.failed']);
    expect((await deliver(eventPayload('payment_intent.succeeded', intent(no)))).status).toBe(200);
    expect(await orderRow(no)).toMatchObject({ status: 'paid', seq: 2 });
    expect((await logs(no)).map((l) => l.verdict)).toEqual(['applied', 'applied']);
  });

  it('a payment_failed of the paying intent arriving after its success is acknowledged (out of order), nothing changes; another intent failing is 409', async () => {
    const no = await order();
    expect((await deliver(eventPayload('payment_intent.succeeded', intent(no)))).status).toBe(200);
    const late = await deliver(eventPayload('payment_intent.payment_failed', intent(no, { amount_received: 0, status: 'requires_payment_method' })));
    expect(late.status).toBe(200);
    expect(late.body).toEqual({ received: true });
    const other = await deliver(
      eventPayload('payment_intent.payment_failed', intent(no, { id: `pi_other_${no}`, amount_received: 0, status: 'requires_payment_method' })),
    );
    expect(other.status).toBe(409);
    expect(await orderRow(no)).toMatchObject({ status: 'paid', seq: 1, transaction_id: `pi_${no}` });
    expect((await events(no)).map((e) => e.type)).toEqual(['order.paid']);
    expect((await logs(no)).map((l) => l.verdict)).toEqual(['applied', 'duplicate', 'invalid_state']);
  });

  it('a repeated event id is a 200 no-op, also when Stripe re-signs it for a retry', async () => {
    const no = await order();
    const payload = eventPayload('checkout.session.completed', session(no), `evt_dup_${no}`);
    expect((await deliver(payload)).status).toBe(200);
    const again = await deliver(payload);
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ received: true });
    const retried = await deliver(payload, sign(payload, { timestamp: nowS() + 5 }));
    expect(retried.status).toBe(200);
    expect(await orderRow(no)).toMatchObject({ status: 'paid', seq: 1 });
    expect(await events(no)).toHaveLength(1);
    expect((await logs(no)).map((l) => l.verdict)).toEqual(['applied', 'duplicate', 'duplicate']);
  });

  it('the same payment reported by a second event type (session, then its intent) is a duplicate', async () => {
    const no = await order();
    expect((await deliver(eventPayload('checkout.session.completed', session(no)))).status).toBe(200);
    const res = await deliver(eventPayload('payment_intent.succeeded', intent(no)));
    expect(res.status).toBe(200);
    expect(await orderRow(no)).toMatchObject({ status: 'paid', seq: 1 });
    expect((await logs(no)).map((l) => l.verdict)).toEqual(['applied', 'duplicate']);
  });

  it('another event type → 200 and nothing changes; logged as ignored', async () => {
    const no = await order();
    const res = await deliver(
      eventPayload('charge.succeeded', { id: `ch_${no}`, object: 'charge', amount: 1234, currency: 'usd', metadata: { order_no: no } }),
    );
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ received: true });
    await expectUnchanged(no);
    const entries = await logs(no);
    expect(entries.map((l) => [l.gateway, l.verdict])).toEqual([['stripe', 'ignored']]);
    expect(entries[0]!.message).toContain('charge.succeeded');
  });

  it('a bad signature → 400 {"error":…}, order unchanged, logged as bad_signature', async () => {
    const no = await order();
    const payload = eventPayload('checkout.session.completed', session(no));
    const res = await deliver(payload, sign(payload, { secret: OTHER_SECRET }));
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: expect.any(String) });
    await expectUnchanged(no);
    expect((await logs(no)).map((l) => l.verdict)).toEqual(['bad_signature']);
    const unsigned = await request(ctx.app).post('/notify/stripe').set('Content-Type', 'application/json').send(payload);
    expect(unsigned.status).toBe(400);
    await expectUnchanged(no);
  });

  it('a tampered body → 400, order unchanged', async () => {
    const no = await order();
    const payload = eventPayload('checkout.session.completed', session(no, { amount_total: 1 }));
    const res = await deliver(payload.replace('"amount_total": 1', '"amount_total": 1234'), sign(payload));
    expect(res.status).toBe(400);
    await expectUnchanged(no);
  });

  it('a stale signature timestamp → 400, logged as replayed', async () => {
    const no = await order();
    const payload = eventPayload('checkout.session.completed', session(no));
    const res = await deliver(payload, sign(payload, { timestamp: nowS() - 400 }));
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: expect.stringContaining('300') });
    await expectUnchanged(no);
    expect((await logs(no)).map((l) => l.verdict)).toEqual(['replayed']);
  });

  it('an amount or currency mismatch → 409, order unchanged, flagged', async () => {
    const no = await order();
    const amount = await deliver(eventPayload('checkout.session.completed', session(no, { amount_total: 1233 })));
    expect(amount.status).toBe(409);
    expect(amount.body).toEqual({ error: expect.any(String) });
    const currency = await deliver(eventPayload('checkout.session.completed', session(no, { currency: 'eur' })));
    expect(currency.status).toBe(409);
    await expectUnchanged(no);
    const entries = await logs(no);
    expect(entries.map((l) => [l.verdict, l.flagged])).toEqual([
      ['amount_mismatch', 1],
      ['amount_mismatch', 1],
    ]);
  });

  it('an unknown order → 404 {"error":…}, recorded for operators', async () => {
    const no = `NO_SUCH_${engine}`;
    const res = await deliver(eventPayload('payment_intent.succeeded', intent(no)));
    expect(res.status).toBe(404);
    expect(res.body).toEqual({ error: expect.stringContaining(no) });
    expect((await logs(no)).map((l) => [l.verdict, l.flagged])).toEqual([['unknown_order', 1]]);
  });

  it('a second, different payment for a paid order → 409 invalid_state, flagged', async () => {
    const no = await order();
    expect((await deliver(eventPayload('payment_intent.succeeded', intent(no)))).status).toBe(200);
    const res = await deliver(eventPayload('payment_intent.succeeded', intent(no, { id: `pi_second_${no}` })));
    expect(res.status).toBe(409);
    expect(await orderRow(no)).toMatchObject({ status: 'paid', transaction_id: `pi_${no}`, seq: 1 });
  });

  it('is off without STRIPE_WEBHOOK_SECRET: 404 JSON that says what to set', async () => {
    const off = await createTestContext(engine);
    try {
      const payload = eventPayload('checkout.session.completed', session('OFF1'));
      const res = await request(off.app).post('/notify/stripe').set('Content-Type', 'application/json').set('Stripe-Signature', sign(payload)).send(payload);
      expect(res.status).toBe(404);
      expect(res.body).toMatchObject({ success: false, code: 'not_found' });
      expect(res.body.message).toContain('STRIPE_WEBHOOK_SECRET');
    } finally {
      await off.close();
    }
  });
});
