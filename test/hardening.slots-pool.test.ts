import { createPool } from 'mysql2';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../src/db/database.ts';
import { withQueryTimeout } from '../src/db/mysql-timeout-pool.ts';
import { DeliverySlots } from '../src/notifications/delivery-slots.ts';
import { createDispatcher } from '../src/notifications/dispatcher.ts';
import { systemClock, toDbTime } from '../src/shared/time.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';
import { ENGINES, MYSQL_URL } from './helpers/engines.ts';
import { startReceiver, type Receiver } from './helpers/receiver.ts';

describe('delivery slots on a count mismatch', () => {
  it('never throws (nothing up the stack would catch it): the count stays within bounds and the mismatch is reported', () => {
    const reported: string[] = [];
    const slots = new DeliverySlots(3, (message) => reported.push(message));
    expect(slots.takeFree()).toBe(3);
    expect(() => slots.release(4)).not.toThrow();
    expect(slots.inUse()).toBe(0);
    expect(() => slots.release(-1)).not.toThrow();
    expect(slots.inUse()).toBe(0);
    expect(reported).toEqual(['delivery slots: releasing 4 of 3 in use', 'delivery slots: releasing -1 of 0 in use']);
    expect(slots.takeFree()).toBe(3);
  });
});

/** The mismatch cannot happen in the loop: mixed outcomes through polls and claiming flushes give every slot back. */
describe.each(ENGINES)('delivery slots through a real drain on %s', (engine) => {
  let ctx: TestContext;
  let receiver: Receiver;
  beforeAll(async () => {
    ctx = await createTestContext(engine, {
      env: { NOTIFY_CONCURRENCY: '4', NOTIFY_POLL_INTERVAL_MS: '50', NOTIFY_RETRY_SCHEDULE: '1h', NOTIFY_TIMEOUT_MS: '300' },
    });
    receiver = await startReceiver((n, res) => {
      if (n % 11 === 5) return; // never answered: a timeout
      setTimeout(() => {
        res.statusCode = n % 7 === 3 ? 500 : n % 13 === 2 ? 410 : 200;
        res.end('ok');
      }, n % 4);
    });
  });
  afterAll(async () => {
    await receiver.close();
    await ctx.close();
  });

  it('every slot is back once the backlog is settled, and no mismatch is ever reported', { timeout: 30_000 }, async () => {
    const EVENTS = 50;
    const now = toDbTime(new Date(Date.now() - 1000));
    await ctx.db.kysely
      .insertInto('notifications')
      .values(
        Array.from({ length: EVENTS }, (_, i) => ({
          event_id: `evt_s_${engine}_${i}`,
          order_no: `S${i}`,
          type: 'order.paid',
          seq: 1,
          payload: JSON.stringify({ event_id: `evt_s_${engine}_${i}`, type: 'order.paid', order_no: `S${i}`, seq: 1 }),
          url: receiver.url,
          status: 'pending',
          next_attempt_at: now,
          created_at: now,
          updated_at: now,
        })),
      )
      .execute();
    const lines: Array<{ level: number; msg: string }> = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) });
    const dispatcher = createDispatcher({ db: ctx.db, config: ctx.config, logger, clock: systemClock });
    dispatcher.start();
    try {
      // Each event attempted once (retries are an hour away) and none still leased.
      const unsettled = async () =>
        (
          await ctx.db.kysely
            .selectFrom('notifications')
            .select('id')
            .where((eb) => eb.or([eb('attempts', '=', 0), eb('status', '=', 'delivering')]))
            .execute()
        ).length;
      await expect.poll(unsettled, { timeout: 20_000, interval: 50 }).toBe(0);
      await expect.poll(() => dispatcher.inFlightCount(), { timeout: 5000 }).toBe(0);
      expect(dispatcher.slotsInUse()).toBe(0);
    } finally {
      await dispatcher.stop(5000);
    }
    expect(lines.filter((l) => /delivery slots/.test(l.msg))).toEqual([]);
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
  });
});

describe.skipIf(!MYSQL_URL)('the MySQL pool with a query time limit', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase('mysql');
  });
  afterAll(() => database.drop());

  it('hands out one wrapper per pooled connection, so each checkout of a connection is the same object', async () => {
    const pool = createPool({ uri: database.url, connectionLimit: 1 });
    const wrapped = withQueryTimeout(pool, 1000);
    const checkout = () =>
      new Promise<{ release(): void }>((resolve, reject) => wrapped.getConnection((err, conn) => (err ? reject(err as Error) : resolve(conn))));
    const first = await checkout();
    first.release();
    const second = await checkout();
    second.release();
    expect(second).toBe(first);
    await new Promise<void>((resolve) => wrapped.end(() => resolve()));
  });

  it('so Kysely keeps one connection object per pooled connection instead of a new one per query', async () => {
    const db = openDatabase(database.url, { poolSize: 1 });
    try {
      const executor = db.kysely.getExecutor();
      const a = await executor.provideConnection(async (c) => c);
      const b = await executor.provideConnection(async (c) => c);
      expect(b).toBe(a);
    } finally {
      await db.close();
    }
  });
});
