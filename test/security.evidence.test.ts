import { createHash } from 'node:crypto';
import { Migrator } from 'kysely';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrations } from '../migrations/index.ts';
import { openDatabase } from '../src/db/database.ts';
import { migrateToLatest } from '../src/db/migrator.ts';
import { orderDetailSchema, rejectedCallbackJsonSchema, rejectedCallbackListSchema } from '../src/openapi/response.schemas.ts';
import { consolePage, signedInAgent } from './helpers/admin.ts';
import { createTestContext, TEST_GATEWAY_SECRET, type TestContext } from './helpers/context.ts';
import { createTestDatabase } from './helpers/database.ts';
import { ENGINES } from './helpers/engines.ts';
import { signed } from './helpers/gateway-signer.ts';

/**
 * Unsigned requests claiming an order's number must not push its genuine payment-log entries out of the
 * order detail (API, heritage query API, console): verified entries are always listed in full, rejected
 * requests apart, counted and paginated.
 */

const FLOOD = 230; // more than the 200 entries the detail used to show
const PADDING = 'x'.repeat(1000);

type Rejected = { id: number; verdict: string; gateway: string; callback_bytes: number | null; callback_sha256: string | null; created_at: string };

describe.each(ENGINES)('evidence of a flooded order on %s', (engine) => {
  let ctx: TestContext;
  const orderNo = `EV-${engine}-${Date.now().toString(36)}`;
  const payment = { order_no: orderNo, transaction_id: `TX-${orderNo}`, amount: '12.34', status: 'success' };
  const forged = (i: number) => `order_no=${orderNo}&transaction_id=T${i}&amount=12.34&status=success&sign=FORGED${i}&pad=${PADDING}`;

  beforeAll(async () => {
    // No rate limit here: this file is about what is shown once rejected requests are stored.
    ctx = await createTestContext(engine, { env: { CALLBACK_REJECT_RATE_PER_MINUTE: 'off' } });
    expect((await ctx.api('post', '/api/orders').send({ order_no: orderNo, amount: '12.34' })).status).toBe(201);
    const applied = await request(ctx.app).post('/notify').type('form').send(signed(payment, TEST_GATEWAY_SECRET));
    expect(applied.status).toBe(200);
    for (let i = 0; i < FLOOD; i += 10) {
      const batch = await Promise.all(
        Array.from({ length: 10 }, (_, j) =>
          request(ctx.app)
            .post('/notify')
            .type('form')
            .send(forged(i + j)),
        ),
      );
      for (const res of batch) expect(res.status).toBe(401);
    }
    // A verified repeat after the flood: the newest verified entry.
    expect((await request(ctx.app).post('/notify').type('form').send(signed(payment, TEST_GATEWAY_SECRET))).status).toBe(200);
  }, 120_000);
  afterAll(() => ctx?.close());

  it('keeps the applied entry in the API detail and lists the rejected requests apart, counted', async () => {
    const res = await ctx.api('get', `/api/orders/${orderNo}`);
    expect(res.status).toBe(200);
    const { payments, rejected_callbacks: rejected } = res.body.data;
    expect(payments.map((p: { verdict: string }) => p.verdict)).toEqual(['duplicate', 'applied']);
    expect(payments[1]).toMatchObject({ transaction_id: `TX-${orderNo}`, amount: '12.34', verdict: 'applied' });
    expect(rejected.total).toBe(FLOOD);
    expect(rejected.items).toHaveLength(20);
    const first: Rejected = rejected.items[0];
    expect(first).toMatchObject({ gateway: 'generic', verdict: 'bad_signature' });
    const body = forged(FLOOD - 1);
    // The newest first: the last forged request sent (its size and hash are of the body as received).
    const newest = rejected.items.find((r: Rejected) => r.callback_sha256 === createHash('sha256').update(body).digest('hex'));
    expect(newest, 'the last forged request is among the newest').toBeDefined();
    expect(newest.callback_bytes).toBe(Buffer.byteLength(body));
    // Newest first: by time, then by id (concurrent requests take their time before their id).
    const keys = rejected.items.map((r: Rejected) => [r.created_at, r.id] as const);
    const sorted = [...keys].sort((a, b) => (a[0] === b[0] ? b[1] - a[1] : a[0] < b[0] ? 1 : -1));
    expect(keys).toEqual(sorted);
  });

  it('pages through every rejected request with GET /api/orders/:order_no/rejected-callbacks', async () => {
    const seen = new Set<number>();
    let page = 1;
    for (;;) {
      const res = await ctx.api('get', `/api/orders/${orderNo}/rejected-callbacks?page=${page}&limit=100`);
      expect(res.status).toBe(200);
      expect(res.body.data).toMatchObject({ page, limit: 100, total: FLOOD });
      for (const item of res.body.data.items as Rejected[]) {
        expect(item.verdict).toBe('bad_signature');
        seen.add(item.id);
      }
      if (res.body.data.items.length < 100) break;
      page++;
    }
    expect(page).toBe(3);
    expect(seen.size).toBe(FLOOD);
    const first = await ctx.api('get', `/api/orders/${orderNo}/rejected-callbacks`);
    expect(first.body.data).toMatchObject({ page: 1, limit: 20, total: FLOOD });
    expect((await ctx.api('get', `/api/orders/${orderNo}/rejected-callbacks?limit=101`)).status).toBe(400);
    expect((await ctx.api('get', '/api/orders/NOPE-EV/rejected-callbacks')).status).toBe(404);
  });

  it('answers as the OpenAPI document describes', async () => {
    const doc = (await request(ctx.app).get('/openapi.json')).body as { paths: Record<string, Record<string, { operationId?: string }>> };
    expect(doc.paths['/api/orders/{order_no}/rejected-callbacks']?.get?.operationId).toBe('listRejectedCallbacks');
    const detail = (await ctx.api('get', `/api/orders/${orderNo}`)).body.data;
    expect(orderDetailSchema.safeParse(detail).error).toBeUndefined();
    expect(Object.keys(detail.rejected_callbacks).sort()).toEqual(['items', 'total']);
    const page = (await ctx.api('get', `/api/orders/${orderNo}/rejected-callbacks?limit=3`)).body.data;
    expect(rejectedCallbackListSchema.safeParse(page).error).toBeUndefined();
    expect(Object.keys(page.items[0]).sort()).toEqual(Object.keys(rejectedCallbackJsonSchema.shape).sort());
  });

  it('shows the same in the heritage query API detail', async () => {
    const res = await ctx.api('get', `/query_order?action=detail&order_no=${orderNo}`);
    expect(res.status).toBe(200);
    expect(res.body.data.payments.map((p: { verdict: string }) => p.verdict)).toEqual(['duplicate', 'applied']);
    expect(res.body.data.rejected_callbacks.total).toBe(FLOOD);
  });

  it('keeps the applied entry on the console timeline and pages the rejected requests in their own section', async () => {
    const agent = await signedInAgent(ctx.app);
    const { html } = await consolePage(agent, `/admin/orders/${orderNo}`);
    const timeline = html.slice(html.indexOf('id="timeline"'), html.indexOf('id="rejected-callbacks"'));
    expect(timeline).toContain('data-verdict="applied"');
    expect(timeline).toContain('data-verdict="duplicate"');
    expect(timeline).not.toContain('data-verdict="bad_signature"');
    expect(html).toMatch(/id="rejected-total"[^>]*>[^<]*230/);
    const rejectedItems = (page: string) => [...page.matchAll(/class="rejected-item[^"]*" data-verdict="bad_signature"/g)].length;
    expect(rejectedItems(html)).toBe(25);
    expect(html).toMatch(/Page 1 of 10/);
    const last = await consolePage(agent, `/admin/orders/${orderNo}?rejected_page=10`);
    expect(rejectedItems(last.html)).toBe(5);
    expect(last.html).toContain('data-verdict="applied"');
  });
});

describe.each(ENGINES)('migration 0003 on %s', (engine) => {
  it('files earlier rejections before verification as rejected, and nothing else', async () => {
    const database = await createTestDatabase(engine);
    const db = openDatabase(database.url, { poolSize: 2 });
    try {
      const upTo2 = { '0001_initial': migrations['0001_initial']!, '0002_console': migrations['0002_console']! };
      const result = await new Migrator({ db: db.kysely, provider: { getMigrations: async () => upTo2 } }).migrateToLatest();
      expect(result.error).toBeUndefined();
      const row = { order_no: 'L1', gateway: 'generic', kind: 'notify', callback_data: 'x', remote_ip: '127.0.0.1', created_at: '2026-01-01 00:00:00.000' };
      const verified = '{"orderNo":"L1"}';
      await db.kysely
        .insertInto('payment_logs')
        .values([
          { ...row, verdict: 'applied', payment_data: verified },
          { ...row, verdict: 'bad_signature' },
          { ...row, verdict: 'malformed' },
          { ...row, verdict: 'forbidden' },
          { ...row, verdict: 'replayed' }, // a stale timestamp, refused by the adapter
          { ...row, verdict: 'replayed', payment_data: verified }, // a nonce seen before, after verification
          { ...row, verdict: 'unknown_order', payment_data: verified },
          { ...row, verdict: 'ignored' }, // verified, about nothing we track
        ] as never)
        .execute();
      await migrateToLatest(db);
      const rows = await db.kysely.selectFrom('payment_logs').select(['verdict', 'payment_data', 'unverified']).orderBy('id').execute();
      expect(rows.map((r) => [r.verdict, Number(r.unverified)])).toEqual([
        ['applied', 0],
        ['bad_signature', 1],
        ['malformed', 1],
        ['forbidden', 1],
        ['replayed', 1],
        ['replayed', 0],
        ['unknown_order', 0],
        ['ignored', 0],
      ]);
    } finally {
      await db.close();
      await database.drop();
    }
  });
});
