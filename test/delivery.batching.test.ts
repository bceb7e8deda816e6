import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../src/db/database.ts';
import { migrateToLatest } from '../src/db/migrator.ts';
import { createCompletionBatcher } from '../src/notifications/completion-batcher.ts';
import type { Completion } from '../src/notifications/completion.repository.ts';
import { claimDueEvents } from '../src/notifications/delivery.repository.ts';
import { systemClock, toDbTime } from '../src/shared/time.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';
import { ENGINES } from './helpers/engines.ts';

/** Grouped delivery bookkeeping (DESIGN A7): many finished deliveries, one transaction, per-row lease checks. */
describe.each(ENGINES)('delivery completions grouped into one transaction on %s', (engine) => {
  let database: TestDatabase;
  let db: Database;
  let counter = 0;
  beforeAll(async () => {
    database = await createTestDatabase(engine);
    db = openDatabase(database.url, { poolSize: 4 });
    await migrateToLatest(db);
  });
  afterAll(async () => {
    await db.close();
    await database.drop();
  });

  /** `n` events as a claim leaves them: delivering, leased to `owner` until `leaseMs` from now. */
  async function leased(n: number, owner: string, leaseMs = 60_000): Promise<number[]> {
    const now = toDbTime(new Date());
    const until = toDbTime(new Date(Date.now() + leaseMs));
    const ids: number[] = [];
    for (let i = 0; i < n; i++) {
      const eventId = `evt_b_${engine}_${++counter}`;
      await db.kysely
        .insertInto('notifications')
        .values({
          event_id: eventId,
          order_no: `B${counter}`,
          type: 'order.paid',
          seq: 1,
          payload: '{}',
          url: 'http://127.0.0.1:9/',
          status: 'delivering',
          next_attempt_at: until,
          lease_owner: owner,
          lease_expires_at: until,
          created_at: now,
          updated_at: now,
        })
        .execute();
      ids.push(Number((await db.kysely.selectFrom('notifications').select('id').where('event_id', '=', eventId).executeTakeFirstOrThrow()).id));
    }
    return ids;
  }

  const completion = (id: number, update: Completion['update'], durationMs = 5): Completion => ({
    attempt: {
      notificationId: id,
      attemptNo: 1,
      startedAt: new Date(),
      durationMs,
      statusCode: update.status === 'delivered' ? 200 : 500,
      error: update.status === 'delivered' ? null : 'HTTP 500',
      excerpt: 'x',
    },
    update,
  });
  const rows = (ids: number[]) => db.kysely.selectFrom('notifications').selectAll().where('id', 'in', ids).orderBy('id').execute();
  const attempts = (ids: number[]) =>
    db.kysely.selectFrom('notification_attempts').selectAll().where('notification_id', 'in', ids).orderBy('notification_id').execute();

  it('records many finished deliveries in few flushes with the right attempt rows and states', async () => {
    const ids = await leased(40, 'A');
    const batcher = createCompletionBatcher(db, 'A', systemClock);
    const retryAt = new Date(Date.now() + 120_000);
    const updateOf = (i: number): Completion['update'] =>
      i % 4 === 1
        ? { status: 'pending', nextAttemptAt: retryAt, scheduleStep: 2, lastError: `HTTP 500 #${i}` }
        : i % 4 === 2
          ? { status: 'dead', lastError: 'schedule spent' }
          : i % 4 === 3
            ? { status: 'abandoned', lastError: 'HTTP 410' }
            : { status: 'delivered', lastError: null };
    const kept = await Promise.all(ids.map((id, i) => batcher.complete(completion(id, updateOf(i)))));
    expect(kept).toEqual(ids.map(() => true));
    expect(batcher.flushes()).toBeLessThanOrEqual(2); // all queued in one turn: the first flush takes them all
    const after = await rows(ids);
    after.forEach((row, i) => {
      const u = updateOf(i);
      expect(row).toMatchObject({ status: u.status, attempts: 1, lease_owner: null, lease_expires_at: null, last_error: u.lastError });
      expect(row.delivered_at === null).toBe(u.status !== 'delivered');
      if (u.status === 'pending') expect(row).toMatchObject({ schedule_step: 2, next_attempt_at: toDbTime(retryAt) });
    });
    const recorded = await attempts(ids);
    expect(recorded.map((a) => Number(a.notification_id))).toEqual(ids);
    expect(recorded.every((a) => a.attempt_no === 1 && a.response_excerpt === 'x')).toBe(true);
  });

  it('reports rows whose lease was taken over as not kept, records their attempt and leaves their state alone', async () => {
    const mine = await leased(3, 'A');
    const taken = await leased(2, 'B');
    const batcher = createCompletionBatcher(db, 'A', systemClock);
    const all = [mine[0]!, taken[0]!, mine[1]!, taken[1]!, mine[2]!];
    const kept = await Promise.all(
      all.map((id, i) =>
        batcher.complete(
          completion(
            id,
            i === 2 ? { status: 'pending', nextAttemptAt: new Date(), scheduleStep: 1, lastError: 'HTTP 500' } : { status: 'delivered', lastError: null },
          ),
        ),
      ),
    );
    expect(kept).toEqual([true, false, true, false, true]);
    expect((await rows(taken)).map((r) => [r.status, r.lease_owner, r.attempts])).toEqual([
      ['delivering', 'B', 0],
      ['delivering', 'B', 0],
    ]);
    expect((await rows(mine)).map((r) => r.status)).toEqual(['delivered', 'pending', 'delivered']);
    expect((await attempts(all)).length).toBe(5);
  });

  it('a failed flush writes nothing for its completions, the others still land, and a redo records each attempt once', async () => {
    const ids = await leased(4, 'A', 100);
    const batcher = createCompletionBatcher(db, 'A', systemClock);
    const delivered = { status: 'delivered', lastError: null } as const;
    // NaN is refused by the database (NOT NULL / bad value): a real statement error, not a lost connection.
    const results = await Promise.allSettled(ids.map((id, i) => batcher.complete(completion(id, delivered, i === 1 ? Number.NaN : 5))));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    expect((await attempts(ids)).map((a) => Number(a.notification_id))).toEqual([ids[0], ids[2], ids[3]]);
    const failed = (await rows([ids[1]!]))[0]!;
    expect(failed).toMatchObject({ status: 'delivering', lease_owner: 'A', attempts: 0 });

    // Its lease expires, it is claimed again (not lost) and completes once.
    await new Promise((r) => setTimeout(r, 150));
    const reclaimed = await claimDueEvents(db, 'C', 16, 60_000, new Date());
    expect(reclaimed.map((e) => e.id)).toContain(ids[1]);
    const redo = createCompletionBatcher(db, 'C', systemClock);
    expect(await redo.complete(completion(ids[1]!, delivered))).toBe(true);
    expect((await attempts([ids[1]!])).length).toBe(1);
    expect((await rows([ids[1]!]))[0]).toMatchObject({ status: 'delivered', attempts: 1 });
  });

  it('a flush whose database cannot take it (unreachable server, missing tables) rejects its completions', async () => {
    const ids = await leased(3, 'A');
    const broken = await createTestDatabase('sqlite'); // no migrations: every statement fails
    const unreachable = new URL(database.url);
    unreachable.port = '1';
    const gone = openDatabase(engine === 'mysql' ? unreachable.toString() : broken.url, { poolSize: 1 });
    const batcher = createCompletionBatcher(gone, 'A', systemClock);
    const results = await Promise.allSettled(ids.map((id) => batcher.complete(completion(id, { status: 'delivered', lastError: null }))));
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    expect(await attempts(ids)).toEqual([]);
    expect((await rows(ids)).every((r) => r.status === 'delivering' && r.lease_owner === 'A')).toBe(true);
    await gone.close();
    await broken.drop();
  });

  it('the claim leases due pending rows and expired leases, oldest first, never a live lease', async () => {
    await db.kysely.updateTable('notifications').set({ status: 'delivered' }).execute();
    const live = await leased(2, 'L', 60_000);
    const expired = await leased(2, 'X', -60_000);
    const now = toDbTime(new Date());
    await db.kysely
      .insertInto('notifications')
      .values(
        Array.from({ length: 3 }, (_, i) => ({
          event_id: `evt_p_${engine}_${i}`,
          order_no: `P${i}`,
          type: 'order.paid',
          seq: 1,
          payload: '{}',
          url: 'http://127.0.0.1:9/',
          status: 'pending',
          next_attempt_at: now,
          created_at: now,
          updated_at: now,
        })),
      )
      .execute();
    const first = await claimDueEvents(db, 'M', 3, 60_000, new Date());
    expect(
      first
        .map((e) => e.id)
        .slice(0, 2)
        .sort(),
    ).toEqual([...expired].sort()); // the expired leases are the oldest due rows
    expect(first).toHaveLength(3);
    const second = await claimDueEvents(db, 'M', 10, 60_000, new Date());
    expect(second).toHaveLength(2);
    expect([...first, ...second].some((e) => live.includes(e.id))).toBe(false);
    expect(await claimDueEvents(db, 'M', 10, 60_000, new Date())).toEqual([]);
    const owners = await db.kysely.selectFrom('notifications').select(['lease_owner']).where('status', '=', 'delivering').execute();
    expect(owners.filter((o) => o.lease_owner === 'M')).toHaveLength(5);
  });
});
