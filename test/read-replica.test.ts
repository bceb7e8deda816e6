import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../src/db/database.ts';
import { migrateToLatest } from '../src/db/migrator.ts';
import { toDbTime } from '../src/shared/time.ts';
import { ENGINES } from './helpers/engines.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';

/** DATABASE_READ_URL: query endpoints read from the replica, writes always go to the primary. */
describe.each(ENGINES)('read replica on %s', (engine) => {
  let replicaDb: TestDatabase;
  let replica: Database;
  let ctx: TestContext;
  beforeAll(async () => {
    replicaDb = await createTestDatabase(engine);
    replica = openDatabase(replicaDb.url, { poolSize: 2 });
    await migrateToLatest(replica);
    ctx = await createTestContext(engine, { env: { DATABASE_READ_URL: replicaDb.url }, deps: { readDb: replica } });
    const now = toDbTime(new Date());
    await replica.kysely
      .insertInto('orders')
      .values({ order_no: 'ONLY_ON_REPLICA', amount_minor: 100, currency: 'CNY', status: 'paid', created_at: now, updated_at: now })
      .execute();
  });
  afterAll(async () => {
    await ctx.close();
    await replica.close();
    await replicaDb.drop();
  });

  it('serves detail, list and query_order from the replica', async () => {
    expect(ctx.config.database.readUrl).toBe(replicaDb.url);
    expect((await ctx.api('get', '/api/orders/ONLY_ON_REPLICA')).body.data.status).toBe('paid');
    expect((await ctx.api('get', '/query_order?action=status&order_no=ONLY_ON_REPLICA')).body.data.status).toBe('paid');
    const list = await ctx.api('get', '/api/orders');
    expect(list.body.data.items.map((o: { order_no: string }) => o.order_no)).toEqual(['ONLY_ON_REPLICA']);
  });

  it('writes to the primary only', async () => {
    const created = await ctx.api('post', '/api/orders').send({ order_no: 'PRIMARY_1', amount: '1.00' });
    expect(created.status).toBe(201);
    const onPrimary = await ctx.db.kysely.selectFrom('orders').select('order_no').execute();
    expect(onPrimary.map((r) => r.order_no)).toEqual(['PRIMARY_1']);
    expect((await ctx.api('get', '/api/orders/PRIMARY_1')).status).toBe(404);
    // Closing reads and writes the primary inside its transaction, so it works before the replica catches up.
    expect((await ctx.api('post', '/api/orders/PRIMARY_1/close')).status).toBe(200);
  });
});
