import { CompiledQuery, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { batchPoolSize, openDatabase, type Database } from '../src/db/database.ts';
import { classifyDbError } from '../src/db/db-errors.ts';
import { withBatchedTransaction } from '../src/db/fast-path/batched-transaction.ts';
import { ENGINES } from './helpers/engines.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';

/** Two statements in one request: what a value smuggled into SQL text would try. */
const TWO_STATEMENTS = CompiledQuery.raw('select 1 as a;\nselect 2 as b');

describe('the pool size split', () => {
  it('keeps a quarter of DATABASE_POOL_SIZE (at least two, one for a tiny pool) for batched transactions', () => {
    expect([1, 2, 3, 4, 8, 10, 16, 100].map(batchPoolSize)).toEqual([1, 1, 2, 2, 2, 2, 4, 25]);
    // The general pool gets the rest, so a process still opens at most DATABASE_POOL_SIZE connections (2 for a size of 1).
    for (const size of [2, 3, 4, 16, 1000]) expect(size - batchPoolSize(size)).toBeGreaterThanOrEqual(1);
  });
});

describe.each(ENGINES)('multi-statement requests on %s', (engine) => {
  let database: TestDatabase;
  let db: Database;
  beforeAll(async () => {
    database = await createTestDatabase(engine);
    db = openDatabase(database.url, { poolSize: 4 });
  });
  afterAll(async () => {
    await db.close();
    await database.drop();
  });

  it('the general pool refuses two statements in one request', async () => {
    const err = await db.kysely.executeQuery(TWO_STATEMENTS).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err, 'the general pool ran two statements in one request').toBeInstanceOf(Error);
    if (engine === 'mysql') {
      // The server refused the text (ER_PARSE_ERROR): a statement error, not an outage.
      expect((err as { errno?: number }).errno).toBe(1064);
      expect(classifyDbError(err)).toBe('statement');
    } else {
      expect((err as Error).message).toMatch(/more than one statement/);
    }
  });

  it.runIf(engine === 'mysql')('the batch-only pool runs them, one result per statement', async () => {
    const { rows } = await db.batchKysely.executeQuery(TWO_STATEMENTS);
    expect(rows).toEqual([[{ a: 1 }], [{ b: 2 }]]);
  });

  it.runIf(engine === 'mysql')('the two pools are separate and sized from the split: batched transactions use only the batch pool', async () => {
    const idsOf = async (run: () => Promise<number>, times: number) => new Set(await Promise.all(Array.from({ length: times }, run)));
    const held = sql<{ id: number }>`select connection_id() as id, sleep(0.1) as s`;
    const general = await idsOf(async () => Number((await held.execute(db.kysely)).rows[0]!.id), 4);
    const batch = await idsOf(async () => Number((await held.execute(db.batchKysely)).rows[0]!.id), 4);
    const batched = await idsOf(
      () => withBatchedTransaction(db, async (tx) => Number(((await tx.commit({ id: held.compile(tx.db) })).id.rows[0] as { id: number }).id)),
      4,
    );
    expect(general.size).toBeLessThanOrEqual(4 - batchPoolSize(4));
    expect(batch.size).toBeLessThanOrEqual(batchPoolSize(4));
    expect(
      [...batched].every((id) => batch.has(id)),
      'a batched transaction ran outside the batch pool',
    ).toBe(true);
    expect([...general].some((id) => batch.has(id))).toBe(false);
  });

  it('after close neither pool answers, also one that was never used', async () => {
    const closing = openDatabase(database.url, { poolSize: 4 });
    await sql`select 1`.execute(closing.kysely); // the batch pool stays unused
    await closing.close();
    for (const kysely of [closing.kysely, closing.batchKysely]) {
      const err = await sql`select 1`.execute(kysely).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err, 'a closed database answered').toBeInstanceOf(Error);
      expect(classifyDbError(err)).toBe('connection_lost');
    }
  });

  it.runIf(engine === 'sqlite')('SQLite has one handle: batched transactions run on it, one statement at a time', () => {
    expect(db.batchKysely).toBe(db.kysely);
  });
});
