import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decideTransition, type Decision, type PaymentOutcome } from '../src/orders/order-transitions.ts';
import { ORDER_STATUSES } from '../src/orders/order.schema.ts';
import { createTestContext, TEST_GATEWAY_SECRET, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';
import { signed } from './helpers/gateway-signer.ts';
import {
  alipayNotification,
  GATEWAY_ENV,
  postAlipay,
  postStripe,
  postWechat,
  stripeEvent,
  stripeIntent,
  wechatNotification,
  wechatTransaction,
} from './helpers/gaps-gateways.ts';

/*
 * The order rules (transitions: pending → paid|failed|closed, failed → paid|closed, closed → paid flagged, paid final but for
 * refunds, refunded final),
 * written out cell by cell. A cell is what a verified result does to an order in that state:
 *   'paid' / 'failed' / 'closed'  applied, the order moves there;   'paid!'  applied and flagged (late payment)
 *   'dup'  acknowledged as a duplicate, nothing changes;            'rej' / 'rej!'  refused (409), '!' flagged
 * Columns: [same transaction, ordered], [same, unordered], [other transaction, ordered], [other, unordered].
 */
type Cell = 'paid' | 'paid!' | 'failed' | 'closed' | 'dup' | 'rej' | 'rej!';
const TABLE: ReadonlyArray<[status: string, outcome: PaymentOutcome, cells: [Cell, Cell, Cell, Cell]]> = [
  ['pending', 'paid', ['paid', 'paid', 'paid', 'paid']],
  ['pending', 'failed', ['failed', 'failed', 'failed', 'failed']],
  ['pending', 'closed', ['closed', 'closed', 'closed', 'closed']],
  ['failed', 'paid', ['paid', 'paid', 'paid', 'paid']],
  ['failed', 'failed', ['dup', 'dup', 'dup', 'dup']],
  ['failed', 'closed', ['closed', 'closed', 'closed', 'closed']],
  ['closed', 'paid', ['paid!', 'paid!', 'paid!', 'paid!']],
  ['closed', 'failed', ['rej', 'rej', 'rej', 'rej']],
  ['closed', 'closed', ['dup', 'dup', 'dup', 'dup']],
  // paid is final: the same payment again is a duplicate, another one a possible double payment.
  ['paid', 'paid', ['dup', 'dup', 'rej!', 'rej!']],
  // A late failure of the very payment that paid (gateways that deliver out of order) is acknowledged.
  ['paid', 'failed', ['rej', 'dup', 'rej', 'rej']],
  // A gateway closing a paid trade (after a refund) is acknowledged and changes nothing, whatever the transaction.
  ['paid', 'closed', ['dup', 'dup', 'dup', 'dup']],
  // refunded (all of a paid order's money went back) is final like paid, and answers like it.
  ['refunded', 'paid', ['dup', 'dup', 'rej!', 'rej!']],
  ['refunded', 'failed', ['rej', 'dup', 'rej', 'rej']],
  ['refunded', 'closed', ['dup', 'dup', 'dup', 'dup']],
];

function cellOf(decision: Decision): Cell {
  if (decision.kind === 'duplicate') return 'dup';
  if (decision.kind === 'reject') return decision.flagged ? 'rej!' : 'rej';
  return (decision.flagged ? `${decision.to}!` : decision.to) as Cell;
}

const COLUMNS = [
  { same: true, unordered: false },
  { same: true, unordered: true },
  { same: false, unordered: false },
  { same: false, unordered: true },
] as const;

describe('decideTransition: every status × outcome × same/other transaction × ordered/unordered', () => {
  it('the table covers every order status and every outcome', () => {
    expect([...new Set(TABLE.map(([status]) => status))].sort()).toEqual([...ORDER_STATUSES].sort());
    expect([...new Set(TABLE.map(([, outcome]) => outcome))].sort()).toEqual(['closed', 'failed', 'paid']);
    expect(TABLE).toHaveLength(ORDER_STATUSES.length * 3);
  });

  const rows = TABLE.flatMap(([status, outcome, cells]) =>
    COLUMNS.map(({ same, unordered }, i) => [status, outcome, same ? 'same' : 'other', unordered ? 'unordered' : 'ordered', cells[i]!] as const),
  );
  it.each(rows)('%s order, %s result, %s transaction, %s → %s', (status, outcome, same, unordered, expected) => {
    const order = { status, transaction_id: 'TX-A' };
    const decision = decideTransition(order, outcome, same === 'same' ? 'TX-A' : 'TX-B', unordered === 'unordered');
    expect(cellOf(decision)).toBe(expected);
    expect(decision.message).toEqual(expect.any(String));
  });

  it('an order without a transaction id (pending, closed by the API) decides as with another transaction', () => {
    for (const [status, outcome, cells] of TABLE) {
      for (const unordered of [false, true]) {
        expect(cellOf(decideTransition({ status, transaction_id: null }, outcome, 'TX-B', unordered))).toBe(cells[unordered ? 3 : 2]);
      }
    }
  });
});

describe.each(ENGINES)('a close after paid, end to end per gateway, on %s', (engine) => {
  let ctx: TestContext;
  let n = 0;
  beforeAll(async () => {
    ctx = await createTestContext(engine, { env: GATEWAY_ENV });
  });
  afterAll(() => ctx.close());

  async function order(method: string, currency = 'CNY'): Promise<string> {
    const order_no = `CAP${engine[0]}${++n}`;
    const res = await ctx
      .api('post', '/api/orders')
      .send({ order_no, amount: '12.34', currency, payment_method: method, notify_url: 'https://merchant.example/n' });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return order_no;
  }
  const row = (no: string) =>
    ctx.db.kysely.selectFrom('orders').select(['status', 'seq', 'flagged', 'transaction_id']).where('order_no', '=', no).executeTakeFirstOrThrow();
  const verdicts = async (no: string) =>
    (await ctx.db.kysely.selectFrom('payment_logs').select(['verdict', 'flagged']).where('order_no', '=', no).orderBy('id').execute()).map(
      (l) => `${l.verdict}${l.flagged ? '!' : ''}`,
    );
  const events = async (no: string) =>
    (await ctx.db.kysely.selectFrom('notifications').select('type').where('order_no', '=', no).orderBy('seq').execute()).map((e) => e.type);
  const nowS = () => Math.floor(Date.now() / 1000);

  async function expectStillPaid(no: string, transactionId: string) {
    expect(await row(no)).toMatchObject({ status: 'paid', seq: 1, flagged: 0, transaction_id: transactionId });
    expect(await events(no)).toEqual(['order.paid']);
  }

  it('Alipay: TRADE_CLOSED after TRADE_SUCCESS answers success and changes nothing, for the same trade or another', async () => {
    const no = await order('alipay');
    const paid = alipayNotification(no);
    expect((await postAlipay(ctx.app, paid)).text).toBe('success');
    for (const trade_no of [paid.trade_no!, `${paid.trade_no}-other`]) {
      const closed = await postAlipay(ctx.app, alipayNotification(no, { trade_no, trade_status: 'TRADE_CLOSED' }));
      expect(closed.status).toBe(200);
      expect(closed.text).toBe('success');
    }
    await expectStillPaid(no, paid.trade_no!);
    expect(await verdicts(no)).toEqual(['applied', 'duplicate', 'duplicate']);
  });

  it('WeChat Pay: trade_state CLOSED after SUCCESS answers 204 and changes nothing', async () => {
    const no = await order('wechatpay');
    expect((await postWechat(ctx.app, wechatNotification(wechatTransaction(no), nowS()))).status).toBe(204);
    const closed = await postWechat(ctx.app, wechatNotification(wechatTransaction(no, { trade_state: 'CLOSED' }), nowS(), { eventType: 'TRANSACTION.CLOSED' }));
    expect(closed.status).toBe(204);
    expect(closed.text).toBe('');
    await expectStillPaid(no, `4200000${no}`);
    expect(await verdicts(no)).toEqual(['applied', 'duplicate']);
  });

  it('Stripe has no close: an expired session and a late failure of the paying intent after payment change nothing', async () => {
    const no = await order('stripe', 'USD');
    expect((await postStripe(ctx.app, stripeEvent('payment_intent.succeeded', stripeIntent(no)), nowS())).status).toBe(200);
    const expired = stripeEvent('checkout.session.expired', {
      id: `cs_${no}`,
      object: 'checkout.session',
      client_reference_id: no,
      amount_total: 1234,
      currency: 'usd',
      status: 'expired',
      payment_status: 'unpaid',
    });
    expect((await postStripe(ctx.app, expired, nowS())).body).toEqual({ received: true });
    const lateFailure = stripeEvent('payment_intent.payment_failed', stripeIntent(no, { status: 'requires_payment_method' }));
    expect((await postStripe(ctx.app, lateFailure, nowS())).body).toEqual({ received: true });
    await expectStillPaid(no, `pi_${no}`);
    expect(await verdicts(no)).toEqual(['applied', 'ignored', 'duplicate']);
  });

  it('generic: a callback cannot close an order (status closed is malformed), and the paid order stays paid', async () => {
    const no = await order('generic');
    const pay = { order_no: no, transaction_id: `G-${no}`, amount: '12.34', status: 'success' };
    expect((await request(ctx.app).post('/notify').type('form').send(signed(pay, TEST_GATEWAY_SECRET))).status).toBe(200);
    const close = await request(ctx.app)
      .post('/notify')
      .type('form')
      .send(signed({ ...pay, status: 'closed' }, TEST_GATEWAY_SECRET));
    expect(close.status).toBe(400);
    expect(close.body).toMatchObject({ success: false, code: 'validation_failed' });
    await expectStillPaid(no, `G-${no}`);
    expect(await verdicts(no)).toEqual(['applied', 'malformed']);
  });

  it('the API: closing a paid order is 409 invalid_state and changes nothing', async () => {
    const no = await order('generic');
    const pay = { order_no: no, transaction_id: `G-${no}`, amount: '12.34', status: 'success' };
    expect((await request(ctx.app).post('/notify').type('form').send(signed(pay, TEST_GATEWAY_SECRET))).status).toBe(200);
    const close = await ctx.api('post', `/api/orders/${no}/close`);
    expect(close.status).toBe(409);
    expect(close.body).toMatchObject({ success: false, code: 'invalid_state' });
    await expectStillPaid(no, `G-${no}`);
  });
});
