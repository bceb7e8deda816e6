import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENGINES } from './helpers/engines.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';

/** 25 orders, one minute apart from 2026-01-01T00:00Z, statuses cycling pending/pending/closed; then 3 in the same millisecond. */
describe.each(ENGINES)('GET /api/orders on %s', (engine) => {
  let ctx: TestContext;
  let now = new Date('2026-01-01T00:00:00.000Z');
  const created: string[] = [];
  beforeAll(async () => {
    ctx = await createTestContext(engine, { clock: () => now });
    for (let i = 0; i < 25; i++) {
      now = new Date(Date.UTC(2026, 0, 1, 0, i));
      const res = await ctx.api('post', '/api/orders').send({ order_no: `L${String(i).padStart(3, '0')}`, amount: `${i + 1}.00` });
      expect(res.status).toBe(201);
      created.push(res.body.data.order_no);
      if (i % 3 === 2) expect((await ctx.api('post', `/api/orders/L${String(i).padStart(3, '0')}/close`)).status).toBe(200);
    }
    now = new Date(Date.UTC(2026, 0, 2));
    for (const n of ['S1', 'S2', 'S3']) expect((await ctx.api('post', '/api/orders').send({ order_no: n, amount: '1' })).status).toBe(201);
  });
  afterAll(() => ctx.close());

  it('lists newest first with page, limit and total', async () => {
    const res = await ctx.api('get', '/api/orders?limit=5');
    expect(res.status).toBe(200);
    const { items, page, limit, total, next_cursor } = res.body.data;
    expect({ page, limit, total }).toEqual({ page: 1, limit: 5, total: 28 });
    expect(items.map((o: { order_no: string }) => o.order_no)).toEqual(['S3', 'S2', 'S1', 'L024', 'L023']);
    expect(typeof next_cursor).toBe('string');
  });

  it('defaults to 20 per page and returns later pages by offset', async () => {
    const first = await ctx.api('get', '/api/orders');
    expect(first.body.data.items).toHaveLength(20);
    expect(first.body.data.limit).toBe(20);
    const second = await ctx.api('get', '/api/orders?page=2');
    expect(second.body.data.items).toHaveLength(8);
    expect(second.body.data.next_cursor).toBeNull();
    const beyond = await ctx.api('get', '/api/orders?page=9');
    expect(beyond.body.data).toMatchObject({ items: [], total: 28, page: 9 });
  });

  it('filters by status', async () => {
    const res = await ctx.api('get', '/api/orders?status=closed&limit=100');
    expect(res.body.data.total).toBe(8);
    expect(res.body.data.items.every((o: { status: string }) => o.status === 'closed')).toBe(true);
    expect((await ctx.api('get', '/api/orders?status=paid')).body.data.total).toBe(0);
  });

  it('filters by created_at with ISO-8601 and unix seconds, inclusive', async () => {
    const iso = await ctx.api('get', '/api/orders?from=2026-01-01T00:10:00Z&to=2026-01-01T00:14:00Z');
    expect(iso.body.data.items.map((o: { order_no: string }) => o.order_no)).toEqual(['L014', 'L013', 'L012', 'L011', 'L010']);
    const from = Date.UTC(2026, 0, 1, 0, 10) / 1000;
    const unix = await ctx.api('get', `/api/orders?from=${from}&to=${from + 4 * 60}`);
    expect(unix.body.data.total).toBe(5);
    const day = await ctx.api('get', '/api/orders?from=2026-01-01&to=2026-01-01&limit=100');
    expect(day.body.data.total).toBe(25);
    const combined = await ctx.api('get', '/api/orders?status=pending&from=2026-01-01T00:00:00Z&to=2026-01-01T00:05:00Z');
    expect(combined.body.data.items.map((o: { order_no: string }) => o.order_no)).toEqual(['L004', 'L003', 'L001', 'L000']);
  });

  it('walks every order exactly once with next_cursor, including rows created in the same millisecond', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res: { status: number; body: { data: { items: Array<{ order_no: string }>; next_cursor: string | null; page: number | null; total: number } } } =
        await ctx.api('get', `/api/orders?limit=4${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      if (cursor) expect(res.body.data.page).toBeNull();
      expect(res.body.data.total).toBe(28);
      seen.push(...res.body.data.items.map((o) => o.order_no));
      cursor = res.body.data.next_cursor;
      pages++;
    } while (cursor && pages < 20);
    expect(pages).toBe(7);
    expect(seen).toHaveLength(28);
    expect(new Set(seen).size).toBe(28);
    expect(seen.slice(0, 3)).toEqual(['S3', 'S2', 'S1']);
    expect(seen.at(-1)).toBe('L000');
  });

  it('applies filters along a cursor walk', async () => {
    const first = await ctx.api('get', '/api/orders?status=closed&limit=5');
    const second = await ctx.api('get', `/api/orders?status=closed&limit=5&cursor=${first.body.data.next_cursor}`);
    const all = [...first.body.data.items, ...second.body.data.items].map((o: { order_no: string }) => o.order_no);
    expect(all).toEqual(['L023', 'L020', 'L017', 'L014', 'L011', 'L008', 'L005', 'L002']);
    expect(second.body.data.next_cursor).toBeNull();
  });

  it.each([
    ['limit=0', 'limit'],
    ['limit=101', 'limit'],
    ['limit=abc', 'limit'],
    ['limit=-1', 'limit'],
    ['page=0', 'page'],
    ['page=1.5', 'page'],
    ['status=archived', 'status'],
    ['from=yesterday', 'from'],
    ['to=2026-13-45', 'to'],
    ['cursor=not-a-cursor', 'cursor'],
    [`cursor=${Buffer.from('["x",1]').toString('base64url')}`, 'cursor'],
    ['status=paid&status=closed', 'status'],
  ])('%s → 400 naming %s', async (query, field) => {
    const res = await ctx.api('get', `/api/orders?${query}`);
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('validation_failed');
    expect(res.body.errors.map((e: { path: string }) => e.path)).toContain(field);
  });

  it('status=refunded is a filter like the others (an order all of whose money went back)', async () => {
    const res = await ctx.api('get', '/api/orders?status=refunded');
    expect(res.status).toBe(200);
    expect(res.body.data).toMatchObject({ items: [], total: 0 });
  });

  it('accepts the limit edges 1 and 100', async () => {
    expect((await ctx.api('get', '/api/orders?limit=1')).body.data.items).toHaveLength(1);
    expect((await ctx.api('get', '/api/orders?limit=100')).body.data.items).toHaveLength(28);
  });
});
