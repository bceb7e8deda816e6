import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENGINES } from './helpers/engines.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';
import { toDbTime } from '../src/shared/time.ts';

describe.each(ENGINES)('order detail and close on %s', (engine) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(engine);
  });
  afterAll(() => ctx.close());

  it('returns the order with empty payments and notifications arrays', async () => {
    await ctx.api('post', '/api/orders').send({ order_no: 'D1', amount: '5.00' });
    const res = await ctx.api('get', '/api/orders/D1');
    expect(res.status).toBe(200);
    expect(res.body.data).toMatchObject({ order_no: 'D1', amount: '5.00', status: 'pending', payments: [], notifications: [] });
  });

  it('includes payment-log entries newest first and events with their attempts', async () => {
    await ctx.api('post', '/api/orders').send({ order_no: 'D2', amount: '7.00', notify_url: 'https://m.example/n' });
    const t = (s: number) => toDbTime(new Date(Date.UTC(2026, 0, 1, 0, 0, s)));
    const log = { order_no: 'D2', gateway: 'generic', kind: 'notify', callback_data: '{}', remote_ip: '127.0.0.1' };
    await ctx.db.kysely
      .insertInto('payment_logs')
      .values([
        { ...log, verdict: 'bad_signature', created_at: t(1) },
        { ...log, verdict: 'applied', transaction_id: 'T1', amount_minor: 700, currency: 'CNY', status: 'success', created_at: t(2) },
      ])
      .execute();
    const inserted = await ctx.db.kysely
      .insertInto('notifications')
      .values({
        event_id: 'evt_1',
        order_no: 'D2',
        type: 'order.paid',
        seq: 1,
        payload: '{}',
        url: 'https://m.example/n',
        status: 'delivered',
        attempts: 2,
        next_attempt_at: t(3),
        created_at: t(2),
        updated_at: t(3),
        delivered_at: t(3),
      })
      .executeTakeFirstOrThrow();
    const notificationId = Number(inserted.insertId);
    await ctx.db.kysely
      .insertInto('notification_attempts')
      .values([
        { notification_id: notificationId, attempt_no: 2, started_at: t(3), duration_ms: 12, status_code: 200, response_excerpt: 'success' },
        { notification_id: notificationId, attempt_no: 1, started_at: t(2), duration_ms: 30, status_code: 500, error: 'HTTP 500' },
      ])
      .execute();

    const res = await ctx.api('get', '/api/orders/D2');
    expect(res.status).toBe(200);
    const { payments, notifications } = res.body.data;
    expect(payments.map((p: { verdict: string }) => p.verdict)).toEqual(['applied', 'bad_signature']);
    expect(payments[0]).toMatchObject({
      gateway: 'generic',
      kind: 'notify',
      transaction_id: 'T1',
      amount: '7.00',
      currency: 'CNY',
      flagged: false,
      remote_ip: '127.0.0.1',
      created_at: '2026-01-01T00:00:02.000Z',
    });
    expect(notifications).toHaveLength(1);
    expect(notifications[0]).toMatchObject({ event_id: 'evt_1', type: 'order.paid', seq: 1, status: 'delivered', attempt_count: 2 });
    expect(notifications[0].attempts.map((a: { attempt_no: number; status_code: number }) => [a.attempt_no, a.status_code])).toEqual([
      [1, 500],
      [2, 200],
    ]);
  });

  it('answers 404 not_found for an unknown order and 400 for a malformed number', async () => {
    const missing = await ctx.api('get', '/api/orders/NOPE');
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ success: false, code: 'not_found' });
    const bad = await ctx.api('get', `/api/orders/${encodeURIComponent("x' or '1'='1")}`);
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe('validation_failed');
  });

  it('closes pending and failed orders, and refuses other states with 409 invalid_state', async () => {
    await ctx.api('post', '/api/orders').send({ order_no: 'C1', amount: '1' });
    const closed = await ctx.api('post', '/api/orders/C1/close');
    expect(closed.status).toBe(200);
    expect(closed.body.data).toMatchObject({ order_no: 'C1', status: 'closed' });
    const again = await ctx.api('post', '/api/orders/C1/close');
    expect(again.status).toBe(409);
    expect(again.body.code).toBe('invalid_state');

    await ctx.api('post', '/api/orders').send({ order_no: 'C2', amount: '1' });
    await ctx.db.kysely.updateTable('orders').set({ status: 'failed' }).where('order_no', '=', 'C2').execute();
    expect((await ctx.api('post', '/api/orders/C2/close')).body.data.status).toBe('closed');

    await ctx.api('post', '/api/orders').send({ order_no: 'C3', amount: '1' });
    await ctx.db.kysely.updateTable('orders').set({ status: 'paid' }).where('order_no', '=', 'C3').execute();
    const paid = await ctx.api('post', '/api/orders/C3/close');
    expect(paid.status).toBe(409);
    expect(paid.body.message).toContain('paid');
    const row = await ctx.db.kysely.selectFrom('orders').select('status').where('order_no', '=', 'C3').executeTakeFirstOrThrow();
    expect(row.status).toBe('paid');

    expect((await ctx.api('post', '/api/orders/UNKNOWN/close')).status).toBe(404);
  });

  it('lets exactly one of 10 concurrent closes win', async () => {
    await ctx.api('post', '/api/orders').send({ order_no: 'C4', amount: '1' });
    const results = await Promise.all(Array.from({ length: 10 }, () => ctx.api('post', '/api/orders/C4/close')));
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
    expect(results.filter((r) => r.status === 409)).toHaveLength(9);
  });
});
