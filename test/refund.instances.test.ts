import type { Express } from 'express';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp, refundCheckerOf, stopApp } from '../src/app.ts';
import { openDatabase, type Database } from '../src/db/database.ts';
import { createLogger } from '../src/shared/logger.ts';
import { createTestContext, TEST_GATEWAY_SECRET, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';
import { gatewaySign, signed } from './helpers/gateway-signer.ts';
import { startReceiver, type Receiver } from './helpers/receiver.ts';
import { uid } from './helpers/pages.ts';

/** Several instances over one database, each with its pending-refund loop: every due refund is asked about once per step. */

const T0 = Date.parse('2026-03-01T10:00:00.000Z');
const MIN = 60_000;

describe.each(ENGINES)('three instances settling pending refunds on %s', (engine) => {
  let now = T0;
  const clock = () => new Date(now);
  let gateway: Receiver;
  let ctx: TestContext;
  const handles: Database[] = [];
  const apps: Express[] = [];
  /** refund_no → how often the gateway was asked about it. */
  const asked = new Map<string, number>();
  beforeAll(async () => {
    // Refund requests are refused with 503 (outcome unknown: pending); refund queries answer signed `refund_pending`.
    gateway = await startReceiver((_n, res, entry) => {
      const form = Object.fromEntries(new URLSearchParams(entry.body)) as Record<string, string>;
      if (form.sign !== gatewaySign(form, TEST_GATEWAY_SECRET, 'HMAC-SHA256')) return res.writeHead(401).end();
      if (form.refund_amount !== undefined) return res.writeHead(503).end('busy');
      asked.set(form.refund_no!, (asked.get(form.refund_no!) ?? 0) + 1);
      const body = {
        order_no: form.order_no!,
        refund_no: form.refund_no!,
        status: 'refund_pending',
        timestamp: String(Math.floor(now / 1000)),
        sign_type: 'HMAC-SHA256',
      };
      res.end(JSON.stringify({ ...body, sign: gatewaySign(body, TEST_GATEWAY_SECRET, 'HMAC-SHA256') }));
    });
    const env = {
      GENERIC_REFUND_URL: gateway.url,
      GENERIC_QUERY_URL: gateway.url,
      RECONCILE_AFTER: '1m',
      RECONCILE_SCHEDULE: '2m,5m',
      NOTIFY_TIMEOUT_MS: '2000',
    };
    ctx = await createTestContext(engine, { clock, env });
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
    await gateway?.close();
  });

  async function pendingRefund(): Promise<string> {
    const no = uid('RFI');
    expect((await ctx.api('post', '/api/orders').send({ order_no: no, amount: '3.00' })).status).toBe(201);
    const pay = { order_no: no, transaction_id: `T-${no}`, amount: '3.00', status: 'success' };
    expect((await request(ctx.app).post('/notify').type('form').send(signed(pay, TEST_GATEWAY_SECRET))).status).toBe(200);
    const res = await ctx.api('post', `/api/orders/${no}/refunds`).send({ amount: '3.00', refund_no: `RI-${no}` });
    expect(res.body.data.status).toBe('pending');
    return `RI-${no}`;
  }

  it('20 pending refunds, three loops at once: each asked exactly once per step, then at the last delay of the schedule for ever', async () => {
    const t = now;
    const refunds = await Promise.all(Array.from({ length: 20 }, pendingRefund));
    const runAll = () => Promise.all(apps.map((app) => refundCheckerOf(app).runOnce()));
    for (const [minute, times, looks] of [
      [0.5, 0, 0],
      [1, 1, 20],
      [2.5, 1, 0],
      [3, 2, 20],
      [8, 3, 20],
      [13, 4, 20],
    ] as const) {
      now = t + minute * MIN;
      const started = await runAll();
      expect(
        started.reduce((a, b) => a + b, 0),
        `looks at ${minute} min`,
      ).toBe(looks);
      for (const refundNo of refunds) expect(asked.get(refundNo) ?? 0, `${refundNo} at ${minute} min`).toBe(times);
    }
    const rows = await ctx.db.kysely.selectFrom('refunds').select(['status', 'check_lease', 'check_step']).where('refund_no', 'in', refunds).execute();
    expect(rows.every((r) => r.status === 'pending' && r.check_lease === null && r.check_step === 4)).toBe(true);
  });
});
