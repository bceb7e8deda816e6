import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNotificationService } from '../src/notifications/notification.service.ts';
import { toDbTime } from '../src/shared/time.ts';
import { ENGINES } from './helpers/engines.ts';
import { createDeliveryContext, type DeliveryContext } from './helpers/delivery-context.ts';
import { startReceiver } from './helpers/receiver.ts';

describe.each(ENGINES)('delivery metrics hooks on %s', (engine) => {
  let ctx: DeliveryContext;
  beforeAll(async () => {
    ctx = await createDeliveryContext(engine, { NOTIFY_RETRY_SCHEDULE: '100ms' });
  });
  afterAll(() => ctx.close());

  it('counts outcomes in process and reads backlog and the oldest due event from the database', async () => {
    const ok = await startReceiver();
    const gone = await startReceiver((_n, res) => {
      res.statusCode = 410;
      res.end();
    });
    const failing = await startReceiver((_n, res) => {
      res.statusCode = 500;
      res.end();
    });
    try {
      const a = await ctx.paidOrder(ok.url);
      const b = await ctx.paidOrder(gone.url);
      const c = await ctx.paidOrder(failing.url);
      await ctx.waitForStatus(a, 'delivered');
      await ctx.waitForStatus(b, 'abandoned');
      await ctx.waitForStatus(c, 'dead');
      expect(ctx.dispatcher.metrics.snapshot()).toEqual({ delivered: 1, abandoned: 1, retry: 1, dead: 1 });

      const service = createNotificationService({ db: ctx.db, clock: () => new Date(), metrics: ctx.dispatcher.metrics });
      expect(await service.deliveryMetrics()).toMatchObject({ backlog: 0, oldest_due_age_seconds: 0 });

      // A due event nobody has claimed yet (the loop is stopped): backlog 1, aged 90 s.
      await ctx.dispatcher.stop(1000);
      const past = toDbTime(new Date(Date.now() - 90_000));
      await ctx.db.kysely
        .insertInto('notifications')
        .values({
          event_id: 'evt_backlog',
          order_no: a,
          type: 'order.paid',
          seq: 9,
          payload: '{}',
          url: ok.url,
          status: 'pending',
          next_attempt_at: past,
          created_at: past,
          updated_at: past,
        })
        .execute();
      const metrics = await service.deliveryMetrics();
      expect(metrics.backlog).toBe(1);
      expect(metrics.oldest_due_age_seconds).toBeGreaterThanOrEqual(89);
      expect(metrics.oldest_due_age_seconds).toBeLessThan(120);
    } finally {
      await Promise.all([ok.close(), gone.close(), failing.close()]);
    }
  });
});
