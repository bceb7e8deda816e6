import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import request from 'supertest';
import { ENGINES } from './helpers/engines.ts';
import { createTestContext, TEST_GATEWAY_SECRET, type TestContext } from './helpers/context.ts';
import { signed } from './helpers/gateway-signer.ts';

describe.each(ENGINES)('A4 transitions through /notify on %s', (engine) => {
  let ctx: TestContext;
  let n = 0;
  beforeAll(async () => {
    ctx = await createTestContext(engine);
  });
  afterAll(() => ctx.close());

  async function order(notifyUrl: string | null = 'https://merchant.example/n'): Promise<string> {
    const order_no = `TR${++n}`;
    expect((await ctx.api('post', '/api/orders').send({ order_no, amount: '8.00', ...(notifyUrl ? { notify_url: notifyUrl } : {}) })).status).toBe(201);
    return order_no;
  }
  const send = (order_no: string, transaction_id: string, status: 'success' | 'failed') =>
    request(ctx.app)
      .post('/notify')
      .type('form')
      .send(signed({ order_no, transaction_id, amount: '8.00', status }, TEST_GATEWAY_SECRET));
  const row = (no: string) => ctx.db.kysely.selectFrom('orders').selectAll().where('order_no', '=', no).executeTakeFirstOrThrow();
  const events = async (no: string) =>
    (await ctx.db.kysely.selectFrom('notifications').select(['type', 'seq', 'payload']).where('order_no', '=', no).orderBy('seq').execute()).map((e) => [
      e.type,
      e.seq,
    ]);
  const verdicts = async (no: string) =>
    (await ctx.db.kysely.selectFrom('payment_logs').select(['verdict', 'flagged']).where('order_no', '=', no).orderBy('id').execute()).map(
      (l) => `${l.verdict}${l.flagged ? '!' : ''}`,
    );

  it('pending → failed → paid, with one event per transition and increasing seq', async () => {
    const no = await order();
    const failed = await send(no, 'T-1', 'failed');
    expect(failed.status).toBe(200);
    expect(failed.body.data.status).toBe('failed');
    expect((await send(no, 'T-1', 'failed')).status).toBe(200); // duplicate failure
    const paid = await send(no, 'T-2', 'success');
    expect(paid.body.data.status).toBe('paid');
    expect(await row(no)).toMatchObject({ status: 'paid', transaction_id: 'T-2', seq: 2, flagged: 0 });
    expect(await events(no)).toEqual([
      ['order.failed', 1],
      ['order.paid', 2],
    ]);
    expect(await verdicts(no)).toEqual(['applied', 'duplicate', 'applied']);
  });

  it('closed → paid is applied and flagged as a late payment', async () => {
    const no = await order();
    const closed = await ctx.api('post', `/api/orders/${no}/close`);
    expect(closed.body.data.status).toBe('closed');
    const late = await send(no, 'LATE-1', 'success');
    expect(late.status).toBe(200);
    expect(late.body.data.status).toBe('paid');
    expect(await row(no)).toMatchObject({ status: 'paid', flagged: 1, seq: 2 });
    expect(await events(no)).toEqual([
      ['order.closed', 1],
      ['order.paid', 2],
    ]);
    expect(await verdicts(no)).toEqual(['applied!']);
  });

  it('paid is final: a second transaction is 409 invalid_state, recorded and flagged; failures and closes are refused', async () => {
    const no = await order();
    expect((await send(no, 'P-1', 'success')).status).toBe(200);
    const second = await send(no, 'P-2', 'success');
    expect(second.status).toBe(409);
    expect(second.body.code).toBe('invalid_state');
    expect(second.body.message).toContain('double payment');
    const failure = await send(no, 'P-1', 'failed');
    expect(failure.status).toBe(409);
    expect((await ctx.api('post', `/api/orders/${no}/close`)).status).toBe(409);
    expect(await row(no)).toMatchObject({ status: 'paid', transaction_id: 'P-1', seq: 1 });
    expect(await events(no)).toEqual([['order.paid', 1]]);
    expect(await verdicts(no)).toEqual(['applied', 'invalid_state!', 'invalid_state']);
  });

  it('a failure on a closed order is refused; closing a failed order writes order.closed', async () => {
    const closedNo = await order();
    await ctx.api('post', `/api/orders/${closedNo}/close`);
    expect((await send(closedNo, 'F-1', 'failed')).status).toBe(409);
    const failedNo = await order();
    await send(failedNo, 'F-2', 'failed');
    expect((await ctx.api('post', `/api/orders/${failedNo}/close`)).status).toBe(200);
    expect(await events(failedNo)).toEqual([
      ['order.failed', 1],
      ['order.closed', 2],
    ]);
  });

  it('orders without notify_url change state and advance seq but queue no event', async () => {
    const no = await order(null);
    expect((await send(no, 'Q-1', 'success')).status).toBe(200);
    expect(await row(no)).toMatchObject({ status: 'paid', seq: 1 });
    expect(await events(no)).toEqual([]);
  });

  it('the order.paid event carries the A7 fields', async () => {
    const no = await order();
    await send(no, 'EV-1', 'success');
    const [event] = await ctx.db.kysely.selectFrom('notifications').selectAll().where('order_no', '=', no).execute();
    const payload = JSON.parse(event!.payload);
    expect(Object.keys(payload).sort()).toEqual(['amount', 'currency', 'event_id', 'order_no', 'paid_at', 'seq', 'status', 'transaction_id', 'type']);
    expect(payload).toMatchObject({ type: 'order.paid', order_no: no, transaction_id: 'EV-1', amount: '8.00', currency: 'CNY', status: 'paid', seq: 1 });
    expect(payload.paid_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(event!.event_id).toBe(payload.event_id);
  });

  it('50 concurrent identical notifications: all 200, one transition, one event', async () => {
    const no = await order();
    const params = signed({ order_no: no, transaction_id: 'CONC-1', amount: '8.00', status: 'success' }, TEST_GATEWAY_SECRET);
    const results = await Promise.all(Array.from({ length: 50 }, () => request(ctx.app).post('/notify').type('form').send(params)));
    expect(results.map((r) => r.status)).toEqual(Array(50).fill(200));
    expect(await row(no)).toMatchObject({ status: 'paid', seq: 1 });
    expect(await events(no)).toEqual([['order.paid', 1]]);
    const v = await verdicts(no);
    expect(v.filter((x) => x === 'applied')).toHaveLength(1);
    expect(v.filter((x) => x === 'duplicate')).toHaveLength(49);
  });

  it('20 concurrent notifications with different transaction_ids: one 200, nineteen 409', async () => {
    const no = await order();
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        request(ctx.app)
          .post('/notify')
          .type('form')
          .send(signed({ order_no: no, transaction_id: `RACE-${i}`, amount: '8.00', status: 'success' }, TEST_GATEWAY_SECRET)),
      ),
    );
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
    expect(results.filter((r) => r.status === 409 && r.body.code === 'invalid_state')).toHaveLength(19);
    const winner = results.find((r) => r.status === 200)!;
    expect(winner.body.data.status).toBe('paid');
    expect((await row(no)).seq).toBe(1);
    expect(await events(no)).toEqual([['order.paid', 1]]);
    expect((await verdicts(no)).filter((x) => x === 'invalid_state!')).toHaveLength(19);
  });

  it('a close racing a payment: exactly one wins and the events stay consistent', async () => {
    for (let i = 0; i < 5; i++) {
      const no = await order();
      const [pay, close] = await Promise.all([send(no, `CP-${i}`, 'success'), ctx.api('post', `/api/orders/${no}/close`)]);
      const final = (await row(no)).status;
      expect(final).toBe('paid');
      expect(pay.status).toBe(200);
      const evs = await events(no);
      if (close.status === 200)
        expect(evs).toEqual([
          ['order.closed', 1],
          ['order.paid', 2],
        ]);
      else expect(evs).toEqual([['order.paid', 1]]);
    }
  });
});
