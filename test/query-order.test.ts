import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import request from 'supertest';
import { ENGINES } from './helpers/engines.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';

describe.each(ENGINES)('GET /query_order (heritage API) on %s', (engine) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(engine);
    for (const n of ['Q1', 'Q2', 'Q3']) await ctx.api('post', '/api/orders').send({ order_no: n, amount: '2.00' });
    await ctx.api('post', '/api/orders/Q2/close');
  });
  afterAll(() => ctx.close());

  for (const path of ['/query_order', '/query_order.php']) {
    it(`${path} action=status`, async () => {
      const res = await ctx.api('get', `${path}?action=status&order_no=Q1`);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ success: true, data: { order_no: 'Q1', status: 'pending' }, message: 'ok' });
    });
  }

  it('action=detail matches GET /api/orders/:order_no', async () => {
    const detail = await ctx.api('get', '/query_order.php?action=detail&order_no=Q2');
    const api = await ctx.api('get', '/api/orders/Q2');
    expect(detail.status).toBe(200);
    expect(detail.body.data).toEqual(api.body.data);
    expect(detail.body.data.status).toBe('closed');
  });

  it('action=list accepts page, limit, status, start_time and end_time', async () => {
    const all = await ctx.api('get', '/query_order?action=list&page=1&limit=2');
    expect(all.body.data).toMatchObject({ page: 1, limit: 2, total: 3 });
    expect(all.body.data.items).toHaveLength(2);
    const closed = await ctx.api('get', '/query_order?action=list&status=closed');
    expect(closed.body.data.items.map((o: { order_no: string }) => o.order_no)).toEqual(['Q2']);
    const start = Math.floor(Date.now() / 1000) - 3600;
    const windowed = await ctx.api('get', `/query_order?action=list&start_time=${start}&end_time=${start + 7200}`);
    expect(windowed.body.data.total).toBe(3);
    const past = await ctx.api('get', '/query_order?action=list&start_time=2000-01-01&end_time=2000-01-02');
    expect(past.body.data.total).toBe(0);
  });

  it.each([
    ['', 'action'],
    ['action=delete&order_no=Q1', 'action'],
    ['action=status', 'order_no'],
    ['action=detail&order_no=bad%20no', 'order_no'],
    ['action=list&limit=500', 'limit'],
    ['action=list&start_time=tomorrow', 'start_time'],
    ['action=list&end_time=13:00', 'end_time'],
  ])('?%s → 400 validation_failed (%s)', async (query, field) => {
    const res = await ctx.api('get', `/query_order?${query}`);
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('validation_failed');
    expect(JSON.stringify(res.body.errors)).toContain(field);
  });

  it('answers 404 for an unknown order and 401 without a key', async () => {
    expect((await ctx.api('get', '/query_order?action=status&order_no=NONE')).status).toBe(404);
    const anonymous = await request(ctx.app).get('/query_order.php?action=status&order_no=Q1');
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.code).toBe('unauthorized');
  });
});
