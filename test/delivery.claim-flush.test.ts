import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDispatcher } from '../src/notifications/dispatcher.ts';
import { DeliverySlots } from '../src/notifications/delivery-slots.ts';
import { createLogger } from '../src/shared/logger.ts';
import { systemClock, toDbTime } from '../src/shared/time.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';
import { startReceiver, type Receiver } from './helpers/receiver.ts';

/** A backlog drained by flushes that claim the slots they free (DESIGN A7), within NOTIFY_CONCURRENCY. */
describe.each(ENGINES)('a backlog drained by completion flushes on %s', (engine) => {
  const CONCURRENCY = 4;
  const EVENTS = 60;
  let ctx: TestContext;
  let receiver: Receiver;
  let open = 0;
  let maxOpen = 0;
  beforeAll(async () => {
    // The poll timer never fires during the test: after the first claim, only flushes can keep the drain going.
    ctx = await createTestContext(engine, {
      env: { NOTIFY_CONCURRENCY: String(CONCURRENCY), NOTIFY_POLL_INTERVAL_MS: '3600000', NOTIFY_RETRY_SCHEDULE: '1h' },
    });
    receiver = await startReceiver((n, res) => {
      open += 1;
      maxOpen = Math.max(maxOpen, open);
      // Every seventh answer is a 500: failures and successes share flushes; the delay keeps several requests open at once.
      setTimeout(
        () => {
          open -= 1;
          res.statusCode = n % 7 === 3 ? 500 : 200;
          res.end('ok');
        },
        3 + (n % 5),
      );
    });
  });
  afterAll(async () => {
    await receiver.close();
    await ctx.close();
  });

  it('delivers every event once, never more than NOTIFY_CONCURRENCY at a time, without the poll timer', async () => {
    const now = toDbTime(new Date(Date.now() - 1000));
    const rows = Array.from({ length: EVENTS }, (_, i) => ({
      event_id: `evt_f_${engine}_${i}`,
      order_no: `F${i}`,
      type: 'order.paid',
      seq: 1,
      payload: JSON.stringify({ event_id: `evt_f_${engine}_${i}`, type: 'order.paid', order_no: `F${i}`, seq: 1 }),
      url: receiver.url,
      status: 'pending',
      next_attempt_at: now,
      created_at: now,
      updated_at: now,
    }));
    await ctx.db.kysely.insertInto('notifications').values(rows).execute();
    const dispatcher = createDispatcher({ db: ctx.db, config: ctx.config, logger: createLogger('silent'), clock: systemClock });
    let maxInFlight = 0;
    const sampler = setInterval(() => (maxInFlight = Math.max(maxInFlight, dispatcher.inFlightCount())), 1);
    dispatcher.start();
    try {
      await receiver.waitFor(EVENTS, 20_000);
      const settled = async () => (await ctx.db.kysely.selectFrom('notifications').select('status').where('status', '=', 'delivering').execute()).length === 0;
      for (let i = 0; i < 200 && !(await settled()); i++) await new Promise((r) => setTimeout(r, 10));
    } finally {
      clearInterval(sampler);
      await dispatcher.stop(2000);
    }
    expect(maxOpen).toBeLessThanOrEqual(CONCURRENCY);
    expect(maxInFlight).toBeLessThanOrEqual(CONCURRENCY);
    const ids = receiver.received.map((r) => JSON.parse(r.body).event_id as string);
    expect(new Set(ids).size).toBe(EVENTS);
    expect(ids).toHaveLength(EVENTS);
    const byStatus = await ctx.db.kysely.selectFrom('notifications').select(['status', 'attempts', 'lease_owner']).execute();
    const failed = receiver.received.filter((_, n) => n % 7 === 3).length;
    expect(byStatus.filter((r) => r.status === 'delivered')).toHaveLength(EVENTS - failed);
    expect(byStatus.filter((r) => r.status === 'pending')).toHaveLength(failed); // retried in an hour
    expect(byStatus.every((r) => r.attempts === 1 && r.lease_owner === null)).toBe(true);
    expect(await ctx.db.kysely.selectFrom('notification_attempts').select('id').execute()).toHaveLength(EVENTS);
  });
});

describe('delivery slots', () => {
  it('hands out free slots once and takes back exactly what was taken', () => {
    const slots = new DeliverySlots(3);
    expect(slots.takeFree()).toBe(3);
    expect(slots.takeFree()).toBe(0);
    slots.release(2);
    expect(slots.free()).toBe(2);
    expect(slots.takeFree()).toBe(2);
    slots.release(3);
    expect(slots.inUse()).toBe(0);
  });
});
