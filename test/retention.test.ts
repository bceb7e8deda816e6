import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMaintenance } from '../src/system/maintenance.ts';
import { toDbTime } from '../src/shared/time.ts';
import { ENGINES } from './helpers/engines.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';

describe.each(ENGINES)('retention and nonce purge on %s', (engine) => {
  let ctx: TestContext;
  const now = new Date('2026-06-30T00:00:00Z');
  const daysAgo = (d: number) => toDbTime(new Date(now.getTime() - d * 86_400_000));
  beforeAll(async () => {
    ctx = await createTestContext(engine);
    const log = { gateway: 'generic', kind: 'notify', verdict: 'applied', callback_data: 'x', remote_ip: '127.0.0.1' };
    await ctx.db.kysely
      .insertInto('payment_logs')
      .values([
        ...Array.from({ length: 2500 }, () => ({ ...log, created_at: daysAgo(40) })),
        { ...log, created_at: daysAgo(29) },
        { ...log, created_at: daysAgo(1) },
      ])
      .execute();
    await ctx.db.kysely
      .insertInto('notification_attempts')
      .values([
        { notification_id: 1, attempt_no: 1, started_at: daysAgo(31), duration_ms: 5 },
        { notification_id: 1, attempt_no: 2, started_at: daysAgo(2), duration_ms: 5 },
      ])
      .execute();
    const look = { order_no: 'R1', gateway: 'sandbox', trigger: 'schedule', action: 'query', outcome: 'unchanged', duration_ms: 3 };
    await ctx.db.kysely
      .insertInto('reconcile_attempts')
      .values([
        { ...look, created_at: daysAgo(45) },
        { ...look, created_at: daysAgo(31) },
        { ...look, created_at: daysAgo(3) },
      ])
      .execute();
    await ctx.db.kysely
      .insertInto('replay_nonces')
      .values([
        { scope: 'generic', nonce: 'expired', expires_at: daysAgo(1) },
        { scope: 'generic', nonce: 'live', expires_at: toDbTime(new Date(now.getTime() + 60_000)) },
      ])
      .execute();
  });
  afterAll(() => ctx.close());

  const count = async (table: 'payment_logs' | 'notification_attempts' | 'replay_nonces' | 'reconcile_attempts') =>
    Number(
      (
        await ctx.db.kysely
          .selectFrom(table)
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );

  it('keeps logs and attempts when RETENTION_DAYS is unset, but always purges expired nonces', async () => {
    expect(await runMaintenance(ctx.db, now, null)).toEqual({ nonces: 1, paymentLogs: 0, attempts: 0, looks: 0 });
    expect(await count('payment_logs')).toBe(2502);
    expect(await count('reconcile_attempts')).toBe(3);
    expect(await count('replay_nonces')).toBe(1);
  });

  it("purges payment logs, delivery attempts and the reconciler's looks older than RETENTION_DAYS, in batches", async () => {
    expect(await runMaintenance(ctx.db, now, 30)).toEqual({ nonces: 0, paymentLogs: 2500, attempts: 1, looks: 2 });
    expect(await count('payment_logs')).toBe(2);
    expect(await count('notification_attempts')).toBe(1);
    expect(await count('reconcile_attempts')).toBe(1);
    expect(await runMaintenance(ctx.db, now, 30)).toEqual({ nonces: 0, paymentLogs: 0, attempts: 0, looks: 0 });
  });
});
