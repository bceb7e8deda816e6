import request from 'supertest';
import { expect } from 'vitest';
import type { Engine } from '../../src/db/database.ts';
import { createDispatcher, type Dispatcher } from '../../src/notifications/dispatcher.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { systemClock } from '../../src/shared/time.ts';
import { createTestContext, TEST_GATEWAY_SECRET, type TestContext } from './context.ts';
import { signed } from './gateway-signer.ts';

export interface DeliveryContext extends TestContext {
  dispatcher: Dispatcher;
  /** Creates an order notifying `url` and pays it through /notify; returns the order number. */
  paidOrder(url: string, amount?: string): Promise<string>;
  events(orderNo: string): Promise<Array<{ status: string; attempts: number; last_error: string | null; seq: number; event_id: string }>>;
  attempts(orderNo: string): Promise<Array<{ attempt_no: number; status_code: number | null; error: string | null; duration_ms: number; started_at: string }>>;
  /** Waits until the order's latest event reaches `status`. */
  waitForStatus(orderNo: string, status: string, timeoutMs?: number): Promise<void>;
}

let counter = 0;

/** A test app whose commits wake a real in-process delivery loop (started), on a fresh database. */
export async function createDeliveryContext(engine: Engine, env: Record<string, string> = {}): Promise<DeliveryContext> {
  // The app wakes the loop after commits, and the loop needs the app's config: tie them through a holder.
  const holder: { dispatcher?: Dispatcher } = {};
  const ctx = await createTestContext(engine, {
    env: { NOTIFY_RETRY_SCHEDULE: '200ms,200ms,200ms', NOTIFY_TIMEOUT_MS: '1000', NOTIFY_POLL_INTERVAL_MS: '50', ...env },
    deps: { onEventQueued: () => holder.dispatcher?.wake() },
  });
  const d = createDispatcher({ db: ctx.db, config: ctx.config, logger: createLogger('silent'), clock: systemClock });
  holder.dispatcher = d;
  d.start();
  const events = (orderNo: string) =>
    ctx.db.kysely
      .selectFrom('notifications')
      .select(['status', 'attempts', 'last_error', 'seq', 'event_id'])
      .where('order_no', '=', orderNo)
      .orderBy('seq')
      .execute();
  return {
    ...ctx,
    dispatcher: d,
    async paidOrder(url, amount = '10.00') {
      const orderNo = `D${Date.now().toString(36)}${++counter}`;
      expect((await ctx.api('post', '/api/orders').send({ order_no: orderNo, amount, notify_url: url })).status).toBe(201);
      const paid = await request(ctx.app)
        .post('/notify')
        .type('form')
        .send(signed({ order_no: orderNo, transaction_id: `T-${orderNo}`, amount, status: 'success' }, TEST_GATEWAY_SECRET));
      expect(paid.status).toBe(200);
      return orderNo;
    },
    events,
    attempts: (orderNo) =>
      ctx.db.kysely
        .selectFrom('notification_attempts')
        .innerJoin('notifications', 'notifications.id', 'notification_attempts.notification_id')
        .select(['attempt_no', 'status_code', 'error', 'duration_ms', 'started_at'])
        .where('notifications.order_no', '=', orderNo)
        .orderBy('attempt_no')
        .execute(),
    async waitForStatus(orderNo, status, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const rows = await events(orderNo);
        if (rows.at(-1)?.status === status) return;
        if (Date.now() > deadline) throw new Error(`event of ${orderNo} is ${JSON.stringify(rows)}, not ${status}, after ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async close() {
      await d.stop(2000);
      await ctx.close();
    },
  };
}
