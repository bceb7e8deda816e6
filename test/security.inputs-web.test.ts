import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENGINES } from './helpers/engines.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';
import { signedInAgent } from './helpers/admin.ts';

describe.each(ENGINES)('order list time filters on %s', (engine) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(engine, { clock: () => new Date('2026-01-05T12:00:00Z') });
    expect((await ctx.api('post', '/api/orders').send({ order_no: 'T-IN-RANGE', amount: '1.00' })).status).toBe(201);
  });
  afterAll(() => ctx.close());

  const outOfRange = [
    ['unix seconds past year 9999', '999999999999'],
    ['the first second after 9999-12-31T23:59:59Z', '253402300800'],
    ['a zone offset that moves 9999-12-31 into year 10000', '9999-12-31T23:30:00-01:00'],
    ['a date before 1970', '1969-12-31'],
    ['a date that does not exist', '2026-02-31'],
  ];

  it.each(outOfRange)('GET /api/orders?from= %s → 400 validation_failed', async (_name, value) => {
    for (const key of ['from', 'to']) {
      const res = await ctx.api('get', `/api/orders?${key}=${encodeURIComponent(value)}`);
      expect(res.status, `${key}=${value}`).toBe(400);
      expect(res.body.code).toBe('validation_failed');
      expect(res.body.message).toMatch(new RegExp(`${key} `));
    }
  });

  it.each(outOfRange)('/query_order?action=list start_time/end_time %s → 400 validation_failed', async (_name, value) => {
    for (const key of ['start_time', 'end_time']) {
      const res = await ctx.api('get', `/query_order?action=list&${key}=${encodeURIComponent(value)}`);
      expect(res.status, `${key}=${value}`).toBe(400);
      expect(res.body.code).toBe('validation_failed');
      expect(res.body.message).toContain(key);
    }
  });

  it('says which range is accepted', async () => {
    const res = await ctx.api('get', '/api/orders?from=999999999999');
    expect(res.body.message).toMatch(/1970.*9999|253402300799/);
  });

  it('refuses from later than to (both APIs)', async () => {
    const api = await ctx.api('get', '/api/orders?from=2026-01-06&to=2026-01-05');
    expect(api.status).toBe(400);
    expect(api.body.code).toBe('validation_failed');
    expect(api.body.message).toMatch(/to .*from/);
    const legacy = await ctx.api('get', '/query_order?action=list&start_time=1767657600&end_time=1767571200');
    expect(legacy.status).toBe(400);
    expect(legacy.body.message).toMatch(/end_time .*start_time/);
  });

  it('accepts the edges of the range and a same-day window', async () => {
    expect((await ctx.api('get', '/api/orders?from=0&to=253402300799')).body.data.total).toBe(1);
    expect((await ctx.api('get', '/api/orders?from=1970-01-01&to=9999-12-31')).body.data.total).toBe(1);
    expect((await ctx.api('get', '/api/orders?from=2026-01-05&to=2026-01-05')).body.data.total).toBe(1);
    expect((await ctx.api('get', '/api/orders?from=2026-01-06')).body.data.total).toBe(0);
    expect((await ctx.api('get', '/query_order?action=list&start_time=1767571200&end_time=1767657600')).body.data.total).toBe(1);
  });

  it('the console order filters mark an out-of-range or inverted date and list nothing', async () => {
    const agent = await signedInAgent(ctx.app);
    for (const query of ['from=999999999999', 'to=10000-01-01', 'from=1969-12-31', 'from=2026-01-06&to=2026-01-05', 'q=T-IN&from=999999999999']) {
      const res = await agent.get(`/admin/orders?${query}`);
      expect(res.status, query).toBe(200);
      expect(res.text, query).toMatch(/is-invalid/);
      expect(res.text, query).not.toContain('T-IN-RANGE');
    }
    const ok = await agent.get('/admin/orders?from=2026-01-05&to=2026-01-05');
    expect(ok.text).toContain('T-IN-RANGE');
    expect(ok.text).not.toMatch(/is-invalid/);
  });
});
