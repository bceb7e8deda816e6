import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCallbackService, type CallbackService } from '../src/callbacks/callback.service.ts';
import { createGenericGateway } from '../src/callbacks/gateways/generic.ts';
import { reserveRefund } from '../src/orders/refund-ledger.ts';
import { createGenericRefundClient } from '../src/reconcile/clients/generic-refund.client.ts';
import type { RefundTarget } from '../src/reconcile/gateway-client.ts';
import { signQueryRequest } from '../src/reconcile/query-protocol.ts';
import { createSandboxGateway, type SandboxGateway } from '../src/sandbox/sandbox-gateway.ts';
import { createSandboxRefunds } from '../src/sandbox/sandbox-refunds.ts';
import { systemClock } from '../src/shared/time.ts';
import { createTestContext, TEST_GATEWAY_SECRET as SECRET, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';
import { gatewaySign, nowSeconds } from './helpers/gateway-signer.ts';

/*
 * The sandbox gateway's refunds: its books refuse what a real gateway refuses and book a refund once per refund_no,
 * answer refund queries from those books, and notify /notify's service in process, which settles a refund of the
 * ledger. Requests are built with the tests' own signer where the point is the gateway's check.
 */

const sandboxAdapter = createGenericGateway('sandbox', SECRET);
const signal = () => new AbortController().signal;

interface Warned {
  fields: Record<string, unknown>;
  message: string;
}

describe.each(ENGINES)('sandbox refunds on %s', (engine) => {
  let ctx: TestContext;
  let books: SandboxGateway;
  let callbacks: CallbackService;
  const warned: Warned[] = [];
  const logger = { warn: (fields: Record<string, unknown>, message: string) => void warned.push({ fields, message }) };
  let seq = 0;

  beforeAll(async () => {
    ctx = await createTestContext(engine);
    books = createSandboxGateway(ctx.db, SECRET, systemClock);
    callbacks = createCallbackService({ db: ctx.db, clock: systemClock, allowlist: () => null });
  });
  afterAll(() => ctx?.close());

  const refundsWith = (cb: Pick<CallbackService, 'handle'> = callbacks) =>
    createSandboxRefunds({ books, callbacks: cb as CallbackService, gateway: sandboxAdapter, secret: SECRET, clock: systemClock, logger });

  /** A sandbox order, paid at the sandbox (its books) and in the service (its signed notification), as the checkout does. */
  async function paidOrder(amount = '12.34', currency = 'CNY', status: 'success' | 'failed' = 'success'): Promise<string> {
    const no = `SBRF${engine[0]}${++seq}`;
    const created = await ctx.api('post', '/api/orders').send({ order_no: no, amount, currency, payment_method: 'sandbox' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const minor = Number(amount.replace('.', ''));
    await books.record(ctx.db.kysely, { orderNo: no, transactionId: `SBX-${no}`, status, amountMinor: minor, currency, notificationLost: false });
    const params = { order_no: no, transaction_id: `SBX-${no}`, amount, currency, status, timestamp: nowSeconds(), nonce: `pay-${no}` };
    const outcome = await callbacks.handle({
      gateway: sandboxAdapter,
      kind: 'notify',
      params: { ...params, sign: gatewaySign(params, SECRET) },
      raw: '',
      headers: {},
      remoteIp: null,
      trusted: true,
    });
    expect(outcome.status).toBe(200);
    return no;
  }

  /** A refund request signed by the tests' own signer. */
  function form(orderNo: string, refundNo: string, amount: string, currency = 'CNY', key = SECRET, timestamp = nowSeconds()) {
    const params = {
      order_no: orderNo,
      refund_no: refundNo,
      refund_amount: amount,
      currency,
      timestamp,
      nonce: `n-${refundNo}-${Math.random()}`,
      sign_type: 'HMAC-SHA256',
    };
    return { ...params, sign: gatewaySign(params, key, 'HMAC-SHA256') };
  }

  const bookedRefunds = (orderNo: string) => ctx.db.kysely.selectFrom('sandbox_refunds').selectAll().where('order_no', '=', orderNo).execute();
  const errorOf = (answer: { body: string }) => (JSON.parse(answer.body) as { error: string }).error;

  it('books a refund of a paid order: 200, one refund_success row, reported as new', async () => {
    const no = await paidOrder();
    const answer = await books.answerRefund(form(no, `${no}-R1`, '5.00'));
    expect(answer).toMatchObject({ status: 200, accepted: { order_no: no, refund_no: `${no}-R1`, refund_amount: '5.00', currency: 'CNY' } });
    expect(JSON.parse(answer.body)).toMatchObject({ order_no: no, refund_no: `${no}-R1` });
    const rows = await bookedRefunds(no);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ refund_no: `${no}-R1`, status: 'refund_success', currency: 'CNY' });
    expect(Number(rows[0]!.amount_minor)).toBe(500);
  });

  it('is idempotent by refund_no: the same refund again is 200, not new, no second row; another refund under it is refused', async () => {
    const no = await paidOrder();
    expect((await books.answerRefund(form(no, `${no}-R1`, '5.00'))).accepted).toBeDefined();
    const again = await books.answerRefund(form(no, `${no}-R1`, '5.0'));
    expect(again.status).toBe(200);
    expect(again.accepted).toBeUndefined();
    const reused = await books.answerRefund(form(no, `${no}-R1`, '6.00'));
    expect([reused.status, errorOf(reused)]).toEqual([409, 'refund_no_used']);
    const elsewhere = await books.answerRefund(form(await paidOrder(), `${no}-R1`, '5.00'));
    expect([elsewhere.status, errorOf(elsewhere)]).toEqual([409, 'refund_no_used']);
    expect(await bookedRefunds(no)).toHaveLength(1);
  });

  it('refuses what a gateway refuses, booking nothing: unpaid, failed, over the unrefunded rest, another currency', async () => {
    const failed = await paidOrder('12.34', 'CNY', 'failed');
    const cases: Array<[Record<string, string>, number, string]> = [
      [form('SBRF-NEVER-PAID', 'SBRF-NEVER-R', '1.00'), 409, 'trade_not_paid'],
      [form(failed, `${failed}-R`, '1.00'), 409, 'trade_not_paid'],
    ];
    const paid = await paidOrder();
    expect((await books.answerRefund(form(paid, `${paid}-R1`, '10.00'))).status).toBe(200);
    cases.push([form(paid, `${paid}-R2`, '2.35'), 409, 'refund_exceeds_paid']);
    cases.push([form(paid, `${paid}-R3`, '2.34', 'USD'), 400, 'currency_mismatch']);
    cases.push([form(paid, `${paid}-R4`, '0.001'), 400, 'invalid_amount']);
    for (const [request, status, error] of cases) {
      const answer = await books.answerRefund(request);
      expect([answer.status, errorOf(answer), answer.accepted], request.refund_no).toEqual([status, error, undefined]);
    }
    expect(await bookedRefunds(failed)).toHaveLength(0);
    expect((await bookedRefunds(paid)).map((r) => r.refund_no)).toEqual([`${paid}-R1`]);
    // The rest still fits exactly.
    expect((await books.answerRefund(form(paid, `${paid}-R5`, '2.34'))).status).toBe(200);
  });

  it('refuses a request it cannot verify or that is stale: 401 / 400, nothing booked', async () => {
    const no = await paidOrder();
    const wrongKey = await books.answerRefund(form(no, `${no}-R1`, '1.00', 'CNY', 'another-key'));
    expect([wrongKey.status, errorOf(wrongKey)]).toEqual([401, 'bad_signature']);
    const stale = await books.answerRefund(form(no, `${no}-R1`, '1.00', 'CNY', SECRET, String(Number(nowSeconds()) - 600)));
    expect([stale.status, errorOf(stale)]).toEqual([400, 'stale']);
    const tampered = { ...form(no, `${no}-R1`, '1.00'), refund_amount: '12.34' };
    expect((await books.answerRefund(tampered)).status).toBe(401);
    expect(await bookedRefunds(no)).toHaveLength(0);
  });

  it('concurrent refunds never refund more than was paid, and one refund_no is booked once', async () => {
    const no = await paidOrder();
    const racing = await Promise.all([1, 2, 3, 4].map((i) => books.answerRefund(form(no, `${no}-C${i}`, '5.00'))));
    expect(racing.map((a) => a.status).sort()).toEqual([200, 200, 409, 409]);
    const same = await Promise.all([1, 2, 3].map(() => books.answerRefund(form(no, `${no}-S`, '2.34'))));
    expect(same.map((a) => a.status)).toEqual([200, 200, 200]);
    expect(same.filter((a) => a.accepted)).toHaveLength(1);
    expect((await bookedRefunds(no)).map((r) => Number(r.amount_minor)).sort()).toEqual([234, 500, 500]);
    // One refund_no sent for two orders at once (no lock in common): one is booked, the other refused, nothing thrown.
    const [a, b] = [await paidOrder(), await paidOrder()];
    const split = await Promise.all([a, b, a, b].map((orderNo) => books.answerRefund(form(orderNo, `${no}-SPLIT`, '1.00'))));
    const booked = split.filter((answer) => answer.status === 200);
    expect(booked.length).toBe(2);
    expect(split.filter((answer) => answer.status === 409 && errorOf(answer) === 'refund_no_used')).toHaveLength(2);
    expect(new Set(booked.map((answer) => (JSON.parse(answer.body) as { order_no: string }).order_no)).size).toBe(1);
  });

  it('answers refund queries from its books, signed: refund_success with the amount, refund_not_found otherwise', async () => {
    const no = await paidOrder();
    await books.answerRefund(form(no, `${no}-R1`, '5.00'));
    const client = createGenericRefundClient('sandbox', SECRET, refundsWith().refund, refundsWith().query, systemClock);
    const target = (refundNo: string, orderNo = no): RefundTarget => ({
      orderNo,
      refundNo,
      amountMinor: 500,
      currency: 'CNY',
      orderAmountMinor: 1234,
      transactionId: `SBX-${orderNo}`,
      reason: null,
      gatewayRefundId: null,
      createdAt: new Date(),
    });
    expect(await client.queryRefund(target(`${no}-R1`), signal())).toMatchObject({ state: 'succeeded', amountMinor: 500, currency: 'CNY' });
    expect(await client.queryRefund(target(`${no}-R2`), signal())).toMatchObject({ state: 'not_found', gatewayStatus: 'refund_not_found' });
    expect((await client.queryRefund(target(`${no}-R1`, await paidOrder()), signal())).state).toBe('not_found');
    // An order query is still answered about the order.
    const orderAnswer = JSON.parse((await books.answerQuery(signQueryRequest(no, SECRET, new Date()))).body);
    expect(orderAnswer).toMatchObject({ order_no: no, status: 'success', amount: '12.34' });
  });

  it('the refund notification reaches the service and settles a refund of the ledger; the query agrees', async () => {
    const no = await paidOrder();
    const refundNo = `${no}-L1`;
    const now = new Date();
    await ctx.db.kysely
      .transaction()
      .execute((tx) =>
        reserveRefund(tx, ctx.db.engine, { orderNo: no, refundNo, amount: '5.00', reason: 'test', requestedBy: 'api' }, () => 'sandbox', now, now),
      );
    const refunds = refundsWith();
    const client = createGenericRefundClient('sandbox', SECRET, refunds.refund, refunds.query, systemClock);
    const target: RefundTarget = {
      orderNo: no,
      refundNo,
      amountMinor: 500,
      currency: 'CNY',
      orderAmountMinor: 1234,
      transactionId: `SBX-${no}`,
      reason: 'test',
      gatewayRefundId: null,
      createdAt: now,
    };
    expect(await client.refund(target, signal())).toMatchObject({ state: 'pending', gatewayStatus: 'accepted' });
    await refunds.whenIdle();
    const refund = await ctx.db.kysely.selectFrom('refunds').selectAll().where('refund_no', '=', refundNo).executeTakeFirstOrThrow();
    expect(refund.status).toBe('succeeded');
    const order = await ctx.db.kysely.selectFrom('orders').selectAll().where('order_no', '=', no).executeTakeFirstOrThrow();
    expect([Number(order.refunded_minor), Number(order.refund_reserved_minor)]).toEqual([500, 0]);
    const logs = await ctx.db.kysely.selectFrom('payment_logs').selectAll().where('order_no', '=', no).where('status', '=', 'refund_succeeded').execute();
    expect(logs.map((l) => [l.gateway, l.verdict])).toEqual([['sandbox', 'applied']]);
    expect(await client.queryRefund(target, signal())).toMatchObject({ state: 'succeeded', amountMinor: 500 });
    // Sent again (an unknown outcome): accepted again, no second notification.
    expect((await client.refund(target, signal())).state).toBe('pending');
    await refunds.whenIdle();
    expect(
      await ctx.db.kysely.selectFrom('payment_logs').selectAll().where('order_no', '=', no).where('status', '=', 'refund_succeeded').execute(),
    ).toHaveLength(1);
  });

  it('a notification the service does not apply, or that fails, is logged and never thrown', async () => {
    const no = await paidOrder();
    warned.length = 0;
    // No such refund in the ledger: the service answers not_found.
    const refunds = refundsWith();
    expect((await refunds.refund(form(no, `${no}-X1`, '1.00'), signal())).status).toBe(200);
    await refunds.whenIdle();
    expect(warned).toEqual([
      {
        fields: expect.objectContaining({ refundNo: `${no}-X1`, verdict: 'unknown_refund' }) as unknown,
        message: expect.stringContaining('not applied') as unknown,
      },
    ]);
    const broken = refundsWith({ handle: () => Promise.reject(new Error('storage down')) });
    expect((await broken.refund(form(no, `${no}-X2`, '1.00'), signal())).status).toBe(200);
    await broken.whenIdle();
    expect(warned[1]).toMatchObject({ fields: { refundNo: `${no}-X2`, err: expect.any(Error) as unknown }, message: expect.stringContaining('failed') });
    // A refusal sends nothing.
    expect((await broken.refund(form(no, `${no}-X3`, '99.00'), signal())).status).toBe(409);
    await broken.whenIdle();
    expect(warned).toHaveLength(2);
  });
});
