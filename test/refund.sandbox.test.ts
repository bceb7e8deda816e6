import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { refundCheckerOf } from '../src/app.ts';
import { reserveRefund } from '../src/orders/refund-ledger.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';
import { html } from './helpers/pages.ts';

/** A fresh service refunds sandbox payments with no configuration: the sandbox answers and notifies like a gateway. */

const waitFor = async (check: () => Promise<boolean>, what: string) => {
  const deadline = Date.now() + 5_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe.each(ENGINES)('refunds through the sandbox on %s', (engine) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(engine);
  });
  afterAll(() => ctx?.close());

  const refundRow = (no: string) => ctx.db.kysely.selectFrom('refunds').selectAll().where('refund_no', '=', no).executeTakeFirst();
  const order = (no: string) => ctx.db.kysely.selectFrom('orders').selectAll().where('order_no', '=', no).executeTakeFirstOrThrow();

  /** A sandbox order paid at its checkout, as a shopper does it. */
  async function paidAtCheckout(amount: string): Promise<string> {
    const agent = request.agent(ctx.app);
    const created = await ctx.api('post', '/api/orders').send({ amount, payment_method: 'sandbox', notify_url: 'https://merchant.example/n' });
    expect(created.status).toBe(201);
    const no = created.body.data.order_no as string;
    const checkout = html(await agent.get(`/sandbox/pay/${no}`), 200);
    const paid = await agent
      .post(`/sandbox/pay/${no}`)
      .type('form')
      .send({ _csrf: /name="_csrf" value="([^"]+)"/.exec(checkout)![1], action: 'pay' });
    expect(paid.status).toBe(303);
    expect((await order(no)).status).toBe('paid');
    return no;
  }

  it('partial then full: each refund is accepted pending, then settled by the sandbox notification; the order ends refunded', async () => {
    const no = await paidAtCheckout('20.00');
    const first = await ctx.api('post', `/api/orders/${no}/refunds`).send({ amount: '5.00', reason: 'one item back' });
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    const refundNo = first.body.data.refund_no as string;
    expect(refundNo).toMatch(/^R\d{25}$/);
    await waitFor(async () => (await refundRow(refundNo))?.status === 'succeeded', 'the sandbox refund notification');
    expect(await order(no)).toMatchObject({ status: 'paid', refunded_minor: 500, refund_reserved_minor: 0 });
    const logs = await ctx.db.kysely.selectFrom('payment_logs').select(['gateway', 'verdict', 'status']).where('order_no', '=', no).orderBy('id').execute();
    expect(logs.map((l) => [l.gateway, l.verdict, l.status])).toContainEqual(['sandbox', 'applied', 'refund_succeeded']);

    const rest = await ctx.api('post', `/api/orders/${no}/refunds`).send({ amount: '15.00' });
    expect(rest.status).toBe(201);
    await waitFor(async () => (await order(no)).status === 'refunded', 'the order to be refunded');
    expect(await order(no)).toMatchObject({ refunded_minor: 2000, seq: 3 });
    const events = await ctx.db.kysely.selectFrom('notifications').select(['type', 'seq']).where('order_no', '=', no).orderBy('seq').execute();
    expect(events.map((e) => [e.type, e.seq])).toEqual([
      ['order.paid', 1],
      ['refund.succeeded', 2],
      ['refund.succeeded', 3],
    ]);
  });

  it('a refund reserved but never sent (the process died after the commit) is sent by the loop, then settled; settled ones are left alone', async () => {
    const no = await paidAtCheckout('9.00');
    const past = new Date(Date.now() - 60_000);
    await ctx.db.kysely
      .transaction()
      .execute((trx) =>
        reserveRefund(
          trx,
          ctx.db.engine,
          { orderNo: no, refundNo: `SBX-${no}`, amount: '9.00', reason: null, requestedBy: 'api' },
          () => 'sandbox',
          past,
          past,
        ),
      );
    expect(await refundRow(`SBX-${no}`)).toMatchObject({ status: 'pending' });
    expect(await refundCheckerOf(ctx.app).runOnce()).toBe(1);
    const calls = await ctx.db.kysely.selectFrom('reconcile_attempts').select(['action', 'outcome']).where('order_no', '=', no).orderBy('id').execute();
    expect(calls.map((c) => [c.action, c.outcome])).toEqual([
      ['refund_query', 'refund_not_found'],
      ['refund', 'refund_pending'],
    ]);
    await waitFor(async () => (await refundRow(`SBX-${no}`))?.status === 'succeeded', 'the refund');
    expect(await order(no)).toMatchObject({ status: 'refunded', refunded_minor: 900, refund_reserved_minor: 0 });
    await ctx.db.kysely.updateTable('refunds').set({ check_at: '2000-01-01 00:00:00.000' }).where('refund_no', '=', `SBX-${no}`).execute();
    expect(await refundCheckerOf(ctx.app).runOnce()).toBe(0);
  });
});
