import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { ENGINES } from './helpers/engines.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';

describe.each(ENGINES)('POST /api/orders on %s', (engine) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(engine);
  });
  afterAll(() => ctx.close());

  const countRows = async (orderNo?: string) => {
    let q = ctx.db.kysely.selectFrom('orders').select((eb) => eb.fn.countAll<number>().as('n'));
    if (orderNo) q = q.where('order_no', '=', orderNo);
    return Number((await q.executeTakeFirstOrThrow()).n);
  };

  it('creates an order from JSON with every field and returns the A4 order JSON', async () => {
    const res = await ctx.api('post', '/api/orders').send({
      order_no: 'ORD-json_1',
      amount: '12.34',
      currency: 'USD',
      payment_method: 'generic',
      subject: 'Coffee ☕ 咖啡',
      callback_url: 'https://shop.example/return?x=1',
      notify_url: 'http://shop.example/notify',
      metadata: { customer: 'c-1', qty: 2, gift: false, note: null },
    });
    expect(res.status).toBe(201);
    expect(res.body.success).toBe(true);
    expect(res.body.message).toBe('order created');
    const order = res.body.data;
    expect(order).toMatchObject({
      order_no: 'ORD-json_1',
      amount: '12.34',
      currency: 'USD',
      status: 'pending',
      payment_method: 'generic',
      subject: 'Coffee ☕ 咖啡',
      transaction_id: null,
      callback_url: 'https://shop.example/return?x=1',
      notify_url: 'http://shop.example/notify',
      metadata: { customer: 'c-1', gift: false, note: null, qty: 2 },
      paid_at: null,
      refunded_amount: '0.00',
    });
    expect(Object.keys(order).sort()).toEqual(
      [
        'amount',
        'callback_url',
        'created_at',
        'currency',
        'metadata',
        'notify_url',
        'order_no',
        'paid_at',
        'expires_at',
        'payment_method',
        'refunded_amount',
        'status',
        'subject',
        'transaction_id',
        'updated_at',
      ].sort(),
    );
    expect(order.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const row = await ctx.db.kysely.selectFrom('orders').selectAll().where('order_no', '=', 'ORD-json_1').executeTakeFirstOrThrow();
    expect(row.amount_minor).toBe(1234);
    expect(typeof row.amount_minor).toBe('number');
  });

  it('creates an order from a form body, defaulting currency to CNY', async () => {
    const res = await ctx.api('post', '/api/orders').type('form').send({ order_no: 'form-1', amount: '0.5', subject: 'form order' });
    expect(res.status).toBe(201);
    expect(res.body.data).toMatchObject({ order_no: 'form-1', amount: '0.50', currency: 'CNY', payment_method: null, metadata: null });
  });

  it('generates a unique, time-sortable order number of at most 32 characters', async () => {
    const numbers: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = await ctx.api('post', '/api/orders').send({ amount: '1' });
      expect(res.status).toBe(201);
      numbers.push(res.body.data.order_no);
    }
    for (const n of numbers) expect(n).toMatch(/^[A-Za-z0-9_-]{1,32}$/);
    expect(new Set(numbers).size).toBe(5);
    expect([...numbers].sort()).toEqual(numbers.slice().sort());
    expect(numbers[0]!.slice(0, 8)).toBe(new Date().toISOString().slice(0, 10).replace(/-/g, ''));
  });

  it('stores amounts exactly in the currency minor unit', async () => {
    const cases = [
      ['JPY', '500', 500, '500'],
      ['KWD', '1.234', 1234, '1.234'],
      ['USD', '0.29', 29, '0.29'],
      ['CNY', '9999999999999.99', 999999999999999, '9999999999999.99'],
    ] as const;
    for (const [currency, amount, minor, shown] of cases) {
      const res = await ctx.api('post', '/api/orders').send({ amount, currency });
      expect(res.status, `${amount} ${currency}`).toBe(201);
      expect(res.body.data.amount).toBe(shown);
      const row = await ctx.db.kysely.selectFrom('orders').select('amount_minor').where('order_no', '=', res.body.data.order_no).executeTakeFirstOrThrow();
      expect(row.amount_minor).toBe(minor);
    }
  });

  it('accepts a JSON number amount only when it is a plain decimal', async () => {
    const ok = await ctx.api('post', '/api/orders').send({ amount: 12.5 });
    expect(ok.status).toBe(201);
    expect(ok.body.data.amount).toBe('12.50');
    const tooPrecise = await ctx.api('post', '/api/orders').send({ amount: 0.1 + 0.2 });
    expect(tooPrecise.status).toBe(400);
    const huge = await ctx.api('post', '/api/orders').send({ amount: 1e21 });
    expect(huge.status).toBe(400);
  });

  it('returns 200 with the existing order for an identical replay, 409 order_exists for a different one', async () => {
    const body = { order_no: 'replay-1', amount: '9.90', currency: 'CNY', subject: 's', metadata: { b: 1, a: 'x' } };
    const first = await ctx.api('post', '/api/orders').send(body);
    expect(first.status).toBe(201);
    const again = await ctx.api('post', '/api/orders').send({ ...body, amount: '9.9', metadata: { a: 'x', b: 1 } });
    expect(again.status).toBe(200);
    expect(again.body.success).toBe(true);
    expect(again.body.data).toEqual(first.body.data);

    for (const change of [
      { amount: '9.91' },
      { currency: 'USD' },
      { subject: 'other' },
      { subject: undefined },
      { metadata: { a: 'y', b: 1 } },
      { notify_url: 'https://x.example/n' },
    ]) {
      const res = await ctx.api('post', '/api/orders').send({ ...body, ...change });
      expect(res.status, JSON.stringify(change)).toBe(409);
      expect(res.body).toMatchObject({ success: false, code: 'order_exists' });
    }
    expect(await countRows('replay-1')).toBe(1);
  });

  it('creates exactly one row when 20 requests race to create the same order number', async () => {
    const body = { order_no: 'race-1', amount: '3.00' };
    const results = await Promise.all(Array.from({ length: 20 }, () => ctx.api('post', '/api/orders').send(body)));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 200)).toHaveLength(19);
    expect(await countRows('race-1')).toBe(1);

    const conflicting = await Promise.all(
      Array.from({ length: 10 }, (_, i) => ctx.api('post', '/api/orders').send({ order_no: 'race-2', amount: `${i + 1}.00` })),
    );
    expect(conflicting.filter((r) => r.status === 201)).toHaveLength(1);
    expect(conflicting.filter((r) => r.status === 409)).toHaveLength(9);
    expect(await countRows('race-2')).toBe(1);
  });

  it('stores SQL-looking and markup strings verbatim', async () => {
    const subject = `Robert'); DROP TABLE orders;-- <script>alert(1)</script> " \\ %_`;
    const res = await ctx.api('post', '/api/orders').send({ order_no: 'sql-1', amount: '1', subject, metadata: { q: "' OR 1=1 --" } });
    expect(res.status).toBe(201);
    const back = await ctx.api('get', '/api/orders/sql-1');
    expect(back.body.data.subject).toBe(subject);
    expect(back.body.data.metadata).toEqual({ q: "' OR 1=1 --" });
    const tables = await sql<{ n: number }>`select count(*) as n from orders`.execute(ctx.db.kysely);
    expect(Number(tables.rows[0]!.n)).toBeGreaterThan(0);
  });
});
