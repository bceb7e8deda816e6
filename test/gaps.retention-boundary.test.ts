import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toDbTime } from '../src/shared/time.ts';
import { runMaintenance } from '../src/system/maintenance.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';

/*
 * RETENTION_DAYS purges payment logs and delivery attempts *more* than that many days old: an entry exactly
 * RETENTION_DAYS old stays, one a millisecond older goes. Days are 86 400 000 ms, written out here.
 */
const DAYS = 30;
const WINDOW_MS = DAYS * 86_400_000;

describe.each(ENGINES)('RETENTION_DAYS boundary on %s', (engine) => {
  let ctx: TestContext;
  const now = new Date('2026-06-30T12:34:56.789Z');
  const aged = (ms: number) => toDbTime(new Date(now.getTime() - ms));
  const AGES: Array<[label: string, ageMs: number]> = [
    ['one ms older than the window', WINDOW_MS + 1],
    ['exactly the window', WINDOW_MS],
    ['one ms newer than the window', WINDOW_MS - 1],
  ];

  beforeAll(async () => {
    ctx = await createTestContext(engine);
    const log = { gateway: 'generic', kind: 'notify', verdict: 'applied', callback_data: 'x', remote_ip: '127.0.0.1' };
    await ctx.db.kysely
      .insertInto('payment_logs')
      .values(AGES.map(([label, age]) => ({ ...log, message: label, created_at: aged(age) })))
      .execute();
    await ctx.db.kysely
      .insertInto('notification_attempts')
      .values(AGES.map(([label, age], i) => ({ notification_id: 1, attempt_no: i + 1, error: label, started_at: aged(age), duration_ms: 5 })))
      .execute();
  });
  afterAll(() => ctx.close());

  it('the stored times keep their milliseconds (the boundary is a millisecond wide)', async () => {
    const stored = await ctx.db.kysely.selectFrom('payment_logs').select('created_at').orderBy('id').execute();
    expect(stored.map((r) => String(r.created_at))).toEqual(AGES.map(([, age]) => aged(age)));
  });

  it('purges the entry one ms past RETENTION_DAYS and keeps the one exactly RETENTION_DAYS old and the newer one', async () => {
    expect(await runMaintenance(ctx.db, now, DAYS)).toEqual({ nonces: 0, paymentLogs: 1, attempts: 1, looks: 0 });
    const logs = await ctx.db.kysely.selectFrom('payment_logs').select('message').orderBy('id').execute();
    expect(logs.map((l) => l.message)).toEqual(['exactly the window', 'one ms newer than the window']);
    const attempts = await ctx.db.kysely.selectFrom('notification_attempts').select('error').orderBy('attempt_no').execute();
    expect(attempts.map((a) => a.error)).toEqual(['exactly the window', 'one ms newer than the window']);
  });

  it('a millisecond later, the entry that was exactly RETENTION_DAYS old goes too', async () => {
    expect(await runMaintenance(ctx.db, new Date(now.getTime() + 1), DAYS)).toEqual({ nonces: 0, paymentLogs: 1, attempts: 1, looks: 0 });
    expect((await ctx.db.kysely.selectFrom('payment_logs').select('message').execute()).map((l) => l.message)).toEqual(['one ms newer than the window']);
    expect((await ctx.db.kysely.selectFrom('notification_attempts').select('error').execute()).map((a) => a.error)).toEqual(['one ms newer than the window']);
  });
});
