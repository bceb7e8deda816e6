import type { Express } from 'express';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, reconcilerOf, stopApp } from '../src/app.ts';
import { openDatabase, type Database } from '../src/db/database.ts';
import { createLogger } from '../src/shared/logger.ts';
import { createTestContext, TEST_API_KEY, TEST_GATEWAY_SECRET, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';
import { signed } from './helpers/gateway-signer.ts';
import { startGenericQueryStandin, type GenericQueryStandin } from './helpers/generic-query-standin.ts';
import { outboxRows, paymentLogs, uid } from './helpers/pages.ts';

/** Several instances over one database, each with its reconciler: every due order asked once per step, none lost to a crash. */

const T0 = Date.parse('2026-03-01T10:00:00.000Z');
const MIN = 60_000;
const TIMEOUT_MS = 2000;
const LEASE_MS = 3 * TIMEOUT_MS + 5000;
const dbTime = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('Z', '');

describe.each(ENGINES)('three instances reconciling one database on %s', (engine) => {
  let now = T0;
  const clock = () => new Date(now);
  let standin: GenericQueryStandin;
  let ctx: TestContext;
  const handles: Database[] = [];
  const apps: Express[] = [];
  beforeAll(async () => {
    standin = await startGenericQueryStandin({ secret: TEST_GATEWAY_SECRET, now: clock });
    const env = { GENERIC_QUERY_URL: standin.url, RECONCILE_AFTER: '1m', RECONCILE_SCHEDULE: '2m,5m', ORDER_TTL: '30m', NOTIFY_TIMEOUT_MS: String(TIMEOUT_MS) };
    ctx = await createTestContext(engine, { clock, env });
    // Three instances as three processes would be: each its own pool on the same database, its own app and reconciler.
    for (let i = 0; i < 3; i++) {
      const db = openDatabase(ctx.database.url, { poolSize: 4 });
      handles.push(db);
      apps.push(createApp({ config: ctx.config, db, logger: createLogger('silent'), clock }));
    }
  });
  afterAll(async () => {
    for (const app of apps) await stopApp(app);
    for (const db of handles) await db.close();
    await ctx?.close();
    await standin?.close();
  });

  const order = async () => {
    const order_no = uid('RI');
    const res = await ctx.api('post', '/api/orders').send({ order_no, amount: '12.34', notify_url: 'https://merchant.example/notify' });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return order_no;
  };
  const row = (no: string) => ctx.db.kysely.selectFrom('orders').selectAll().where('order_no', '=', no).executeTakeFirstOrThrow();
  const reconcilers = () => apps.map((app) => reconcilerOf(app));

  it('30 due orders, three runOnce at once: the gateway is asked about each exactly once per step', async () => {
    const t = now;
    const orders = await Promise.all(Array.from({ length: 30 }, order));
    for (const [minute, next] of [
      [1, 3],
      [3, 8],
    ] as const) {
      now = t + minute * MIN;
      const before = standin.requests.length;
      const looks = await Promise.all(reconcilers().map((r) => r.runOnce()));
      expect(looks.reduce((a, b) => a + b, 0)).toBe(30);
      // All three shared the work: an instance whose claim failed (e.g. SQLITE_BUSY) would have looked at nothing.
      for (const n of looks) expect(n).toBeGreaterThan(0);
      expect(standin.requests.length - before).toBe(30);
      for (const no of orders) {
        expect(standin.askedAbout(no), no).toBe(minute === 1 ? 1 : 2);
        expect(await row(no)).toMatchObject({ status: 'pending', reconcile_at: dbTime(t + next * MIN), reconcile_lease: null });
      }
      const attempts = await ctx.db.kysely.selectFrom('reconcile_attempts').select('order_no').where('order_no', 'in', orders).execute();
      expect(attempts).toHaveLength(minute === 1 ? 30 : 60);
    }
  });

  it('an instance that dies mid-query: once its lease runs out another asks again and recovers the payment; never lost', async () => {
    const [a, b, c] = reconcilers() as [ReturnType<typeof reconcilerOf>, ReturnType<typeof reconcilerOf>, ReturnType<typeof reconcilerOf>];
    const no = await order();
    standin.setTrade(no, { status: 'success', amount: '12.34', currency: 'CNY', transactionId: `TX-${no}` });
    standin.setBehaviour('hang', no);
    now += MIN;
    const claimedAt = now;
    const dying = a.runOnce();
    await standin.waitForRequest(no);
    expect(await row(no)).toMatchObject({ status: 'pending', reconcile_lease: a.owner, reconcile_at: dbTime(claimedAt + LEASE_MS) });
    standin.setBehaviour('normal', no);

    now = claimedAt + LEASE_MS - 1;
    expect(await b.runOnce()).toBe(0);
    expect(standin.askedAbout(no)).toBe(1);
    now = claimedAt + LEASE_MS;
    expect(await c.runOnce()).toBe(1);
    expect(standin.askedAbout(no)).toBe(2);
    expect(await row(no)).toMatchObject({ status: 'paid', transaction_id: `TX-${no}`, seq: 1, reconcile_lease: null, reconcile_at: null });

    // The dead instance's look, if it ever ends, changes nothing.
    await a.stop(0);
    await dying;
    expect(await row(no)).toMatchObject({ status: 'paid', seq: 1, reconcile_lease: null, reconcile_at: null });
    expect((await paymentLogs(ctx, no)).map((l) => [l.kind, l.verdict])).toEqual([['query', 'applied']]);
    expect((await outboxRows(ctx, no)).map((e) => [e.type, e.seq])).toEqual([['order.paid', 1]]);
  });

  it('race: 50 concurrent callbacks with one transaction id and sync calls → one transition, one order.paid event (seq 1)', async () => {
    const no = await order();
    standin.setTrade(no, { status: 'success', amount: '12.34', currency: 'CNY', transactionId: `TX-${no}` });
    const seconds = String(Math.floor(now / 1000));
    const callback = (i: number) =>
      request(apps[i % 3]!)
        .post('/notify')
        .type('form')
        .send(
          signed(
            { order_no: no, transaction_id: `TX-${no}`, amount: '12.34', status: 'success', timestamp: seconds, nonce: `n${i}-${no}` },
            TEST_GATEWAY_SECRET,
          ),
        );
    const sync = (i: number) =>
      request(apps[i % 3]!)
        .post(`/api/orders/${no}/sync`)
        .set('X-API-Key', TEST_API_KEY);
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? callback(i) : sync(i))));
    for (const res of answers) expect(res.status, res.text).toBe(200);
    const syncOutcomes = answers.filter((_, i) => i % 2 === 1).map((r) => r.body.data.reconcile.outcome as string);
    for (const outcome of syncOutcomes) expect(['recovered', 'already_paid']).toContain(outcome);
    const callbackMessages = answers.filter((_, i) => i % 2 === 0).map((r) => r.body.message as string);
    for (const message of callbackMessages) expect(['payment applied', 'payment already applied']).toContain(message);
    // Exactly one of the 50 made the transition, whichever it was.
    expect(syncOutcomes.filter((o) => o === 'recovered').length + callbackMessages.filter((m) => m === 'payment applied').length).toBe(1);
    expect(await row(no)).toMatchObject({ status: 'paid', transaction_id: `TX-${no}`, seq: 1 });
    const logs = await paymentLogs(ctx, no);
    expect(logs.filter((l) => l.verdict === 'applied')).toHaveLength(1);
    expect(logs.filter((l) => l.verdict !== 'applied' && l.verdict !== 'duplicate')).toEqual([]);
    expect((await outboxRows(ctx, no)).map((e) => [e.type, e.seq])).toEqual([['order.paid', 1]]);
  });
});
