import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reconcilerOf } from '../src/app.ts';
import { toDbTime } from '../src/shared/time.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';

/** The running loop works through a backlog as fast as the gateway answers, not one claim per poll interval. */
describe.each(ENGINES)('reconciler backlog on %s', (engine) => {
  let ctx: TestContext;
  beforeAll(async () => {
    // A poll interval far longer than the test: only refilling on completion can finish the backlog in time.
    ctx = await createTestContext(engine, { env: { RECONCILE_AFTER: '1s', RECONCILE_CONCURRENCY: '2', NOTIFY_POLL_INTERVAL_MS: '600000' } });
  });
  afterAll(() => ctx.close());

  it('recovers 20 lost sandbox payments with 2 questions in flight and a 10-minute poll interval', async () => {
    const orderNos: string[] = [];
    for (let i = 0; i < 20; i++) {
      const res = await ctx.api('post', '/api/orders').send({ amount: '3.00', payment_method: 'sandbox' });
      expect(res.status).toBe(201);
      orderNos.push(res.body.data.order_no as string);
    }
    // The sandbox gateway's books say paid, and no notification was ever sent (what its "lose the notification" button does).
    await ctx.db.kysely
      .insertInto('sandbox_payments')
      .values(
        orderNos.map((order_no, i) => ({
          order_no,
          transaction_id: `SBXBACKLOG${i}`,
          status: 'success',
          amount_minor: 300,
          currency: 'CNY',
          notification_lost: 1,
          created_at: toDbTime(new Date()),
        })),
      )
      .execute();
    await ctx.db.kysely
      .updateTable('orders')
      .set({ reconcile_at: toDbTime(new Date(Date.now() - 1000)) })
      .execute();
    const reconciler = reconcilerOf(ctx.app);
    reconciler.start();
    try {
      const paid = async () =>
        Number(
          (
            await ctx.db.kysely
              .selectFrom('orders')
              .select((eb) => eb.fn.countAll().as('n'))
              .where('status', '=', 'paid')
              .executeTakeFirstOrThrow()
          ).n,
        );
      await expect.poll(paid, { timeout: 15_000, interval: 100 }).toBe(20);
    } finally {
      await reconciler.stop();
    }
    const looks = await ctx.db.kysely.selectFrom('reconcile_attempts').select(['order_no', 'outcome']).execute();
    expect(looks).toHaveLength(20);
    expect(new Set(looks.map((l) => l.order_no)).size).toBe(20);
    expect(looks.every((l) => l.outcome === 'recovered')).toBe(true);
  });
});
