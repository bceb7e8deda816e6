import SQLite from 'better-sqlite3';
import { writeFileSync } from 'node:fs';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectAffectedRows } from '../src/db/fast-path/batch-statements.ts';
import { UnexpectedRowCount, withBatchedTransaction } from '../src/db/fast-path/batched-transaction.ts';
import { openDatabase, type Database } from '../src/db/database.ts';
import {
  classifyDbError,
  committedNothing,
  isDatabaseUnreachable,
  isStatementRefusal,
  isStorageUnavailable,
  withDbRetry,
  type DbErrorKind,
} from '../src/db/db-errors.ts';
import type { DB } from '../src/db/schema.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';
import { ENGINES, MYSQL_URL } from './helpers/engines.ts';

/** The error `work` fails with (the test fails if it succeeds). */
async function errorOf(work: () => Promise<unknown>): Promise<unknown> {
  try {
    await work();
  } catch (err) {
    return err;
  }
  throw new Error('expected the database to refuse');
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `work` on one pinned connection of `db` (statements of one session). */
const pinned = <T>(db: Database, work: (conn: Kysely<DB>) => Promise<T>) => db.kysely.connection().execute(work);

/**
 * Each error is provoked for real on the engine and must be classified as the kind its policy expects
 * (503 or not, safe to run again or not). The table is per engine: the drivers' codes differ.
 */
describe.each(ENGINES)('database error policy on %s', (engine) => {
  let database: TestDatabase;
  let db: Database;
  let other: Database;
  beforeAll(async () => {
    database = await createTestDatabase(engine);
    db = openDatabase(database.url, { poolSize: 4 });
    other = openDatabase(database.url, { poolSize: 2 });
    await sql`create table t (id integer primary key, k varchar(8) not null unique, v integer not null)`.execute(db.kysely);
    await sql`insert into t (id, k, v) values (1, 'a', 0), (2, 'b', 0)`.execute(db.kysely);
  });
  afterAll(async () => {
    await other.close();
    await db.close();
    await database.drop();
  });

  const expectKind = (err: unknown, kind: DbErrorKind) => expect({ kind: classifyDbError(err), err: String(err) }).toMatchObject({ kind });

  it('a duplicate key is a unique violation: not a 503, nothing committed, a statement refusal', async () => {
    const err = await errorOf(() => sql`insert into t (id, k, v) values (3, 'a', 0)`.execute(db.kysely));
    expectKind(err, 'unique_violation');
    expect(isStorageUnavailable(err)).toBe(false);
    expect(committedNothing(engine, err)).toBe(true);
    expect(isStatementRefusal(err)).toBe(true);
    const pk = await errorOf(() => sql`insert into t (id, k, v) values (1, 'z', 0)`.execute(db.kysely));
    expectKind(pk, 'unique_violation');
  });

  it('a statement the server refuses (bad SQL, a row-count guard) is a statement error, never a 503', async () => {
    const bad = await errorOf(() => sql`select no_such_column from t`.execute(db.kysely));
    expectKind(bad, 'statement');
    expect(isStorageUnavailable(bad)).toBe(false);
    expect(committedNothing(engine, bad)).toBe(true);
    const guard = await errorOf(() =>
      withBatchedTransaction(db, (tx) =>
        tx.commit({
          change: expectAffectedRows(
            tx.db
              .updateTable('t' as never)
              .set({ v: 1 } as never)
              .where('id' as never, '=', 99 as never),
            1,
          ),
        }),
      ),
    );
    expect(guard).toBeInstanceOf(UnexpectedRowCount);
    expectKind(guard, 'statement');
  });

  it('a closed handle is a lost connection: 503, and queued work fails at once', async () => {
    const gone = openDatabase(database.url, { poolSize: 1 });
    await sql`select 1`.execute(gone.kysely);
    await gone.close();
    const err = await errorOf(() => sql`select 1`.execute(gone.kysely));
    expectKind(err, 'connection_lost');
    expect(isStorageUnavailable(err)).toBe(true);
    expect(isDatabaseUnreachable(err)).toBe(true);
  });

  it('an error that is not the database’s is "other": a 500, and on MySQL not proof that nothing committed', () => {
    const err = new TypeError('x is undefined');
    expectKind(err, 'other');
    expect(isStorageUnavailable(err)).toBe(false);
    expect(committedNothing(engine, err)).toBe(engine === 'sqlite');
  });

  it.runIf(engine === 'sqlite')('SQLITE_BUSY from a second connection holding the write lock is a lock timeout (503, retried)', async () => {
    const holder = new SQLite(database.url.slice('sqlite:'.length));
    holder.exec('begin immediate');
    try {
      const err = await errorOf(() =>
        pinned(other, async (conn) => {
          await sql`pragma busy_timeout = 50`.execute(conn);
          await sql`update t set v = v + 1 where id = 1`.execute(conn);
        }),
      );
      expect((err as { code?: string }).code).toBe('SQLITE_BUSY');
      expectKind(err, 'lock_timeout');
      expect(isStorageUnavailable(err)).toBe(true);
      expect(isStatementRefusal(err)).toBe(false);
    } finally {
      holder.exec('rollback');
      holder.close();
    }
  });

  it.runIf(engine === 'sqlite')('SQLITE_BUSY_SNAPSHOT (a read transaction upgraded after another wrote) is a deadlock: run it again', async () => {
    const reader = new SQLite(database.url.slice('sqlite:'.length));
    try {
      reader.exec('begin');
      reader.prepare('select v from t where id = 1').get();
      await sql`update t set v = v + 1 where id = 1`.execute(db.kysely);
      let err: unknown;
      try {
        reader.exec('update t set v = v + 1 where id = 2');
      } catch (e) {
        err = e;
      }
      expect((err as { code?: string }).code).toBe('SQLITE_BUSY_SNAPSHOT');
      expectKind(err, 'deadlock');
    } finally {
      if (reader.inTransaction) reader.exec('rollback');
      reader.close();
    }
  });

  it.runIf(engine === 'sqlite')('a read-only file is read_only, a file that is no database is unavailable', async () => {
    const readonly = new SQLite(database.url.slice('sqlite:'.length), { readonly: true });
    let err: unknown;
    try {
      readonly.exec('update t set v = 0');
    } catch (e) {
      err = e;
    }
    readonly.close();
    expectKind(err, 'read_only');
    expect(isStorageUnavailable(err)).toBe(true);
    const junk = `${database.url.slice('sqlite:'.length)}.junk`;
    writeFileSync(junk, 'this is not a database file, it is plain text '.repeat(200));
    const opened = await errorOf(async () => {
      const notDb = openDatabase(`sqlite:${junk}`);
      await sql`select * from t`.execute(notDb.kysely).finally(() => notDb.close());
    });
    expectKind(opened, 'unavailable');
    expect(isStorageUnavailable(opened)).toBe(true);
  });

  /** Two transactions lock rows 1 and 2 in opposite orders (the first attempt of each waits for the other's first lock). */
  async function crossLock(retry: boolean) {
    let arrived = 0;
    let allArrived!: () => void;
    const all = new Promise<void>((r) => (allArrived = r));
    const side = (first: number, second: number) => {
      let attempt = 0;
      const once = () => {
        const wait = ++attempt === 1;
        return pinned(db, async (conn) => {
          await sql`begin`.execute(conn);
          try {
            await sql`select v from t where id = ${first} for update`.execute(conn);
            if (wait && ++arrived === 2) allArrived();
            if (wait) await all;
            await sql`update t set v = v + 1 where id = ${second}`.execute(conn);
            await sql`commit`.execute(conn);
          } catch (err) {
            await sql`rollback`.execute(conn);
            throw err;
          }
        });
      };
      return retry ? withDbRetry(once) : once();
    };
    return Promise.allSettled([side(1, 2), side(2, 1)]);
  }

  it.runIf(engine === 'mysql')(
    'a deadlock between two transactions is a deadlock (503, nothing committed); the retry helper runs the victim again',
    async () => {
      const alone = await crossLock(false);
      const failures = alone.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
      expect(failures).toHaveLength(1);
      expect((failures[0] as { code?: string }).code).toBe('ER_LOCK_DEADLOCK');
      expectKind(failures[0], 'deadlock');
      expect(isStorageUnavailable(failures[0])).toBe(true);
      expect(committedNothing(engine, failures[0])).toBe(true);
      expect(isStatementRefusal(failures[0])).toBe(true);
      const retried = await crossLock(true);
      expect(retried.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled']);
    },
  );

  it.runIf(engine === 'mysql')('a lock wait past innodb_lock_wait_timeout is a lock timeout (503, retried, not a statement refusal)', async () => {
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    const holder = pinned(db, async (conn) => {
      await sql`begin`.execute(conn);
      await sql`select v from t where id = 1 for update`.execute(conn);
      locked();
      await held;
      await sql`rollback`.execute(conn);
    });
    await isLocked;
    const err = await errorOf(() =>
      pinned(other, async (conn) => {
        await sql`set session innodb_lock_wait_timeout = 1`.execute(conn);
        try {
          await sql`update t set v = v + 1 where id = 1`.execute(conn);
        } finally {
          await sql`set session innodb_lock_wait_timeout = default`.execute(conn);
        }
      }),
    );
    release();
    await holder;
    expect((err as { code?: string }).code).toBe('ER_LOCK_WAIT_TIMEOUT');
    expectKind(err, 'lock_timeout');
    expect(isStorageUnavailable(err)).toBe(true);
    expect(isStatementRefusal(err)).toBe(false);
    expect(committedNothing(engine, err)).toBe(true);
  });

  it.runIf(engine === 'mysql')('KILL of the connection is a lost connection: 503, and a group that failed so may have committed', async () => {
    // Killed while running a query, and killed while idle (the next query finds it gone).
    const running = await errorOf(() =>
      pinned(other, async (conn) => {
        const { rows } = await sql<{ id: number }>`select connection_id() as id`.execute(conn);
        const killer = pause(200).then(() => sql`kill ${sql.raw(String(Number(rows[0]!.id)))}`.execute(db.kysely));
        try {
          await sql`select sleep(5)`.execute(conn);
        } finally {
          await killer;
        }
      }),
    );
    expectKind(running, 'connection_lost');
    const idle = await errorOf(() =>
      pinned(other, async (conn) => {
        const { rows } = await sql<{ id: number }>`select connection_id() as id`.execute(conn);
        await sql`kill ${sql.raw(String(Number(rows[0]!.id)))}`.execute(db.kysely);
        await pause(100);
        await sql`select 1`.execute(conn);
      }),
    );
    expectKind(idle, 'connection_lost');
    for (const err of [running, idle]) {
      expect(isStorageUnavailable(err)).toBe(true);
      expect(isDatabaseUnreachable(err)).toBe(true);
      expect(committedNothing(engine, err)).toBe(false);
    }
  });

  it.runIf(engine === 'mysql')('a query past the query time limit, or past max_statement_time, is a timeout', async () => {
    const slow = openDatabase(database.url, { poolSize: 1, queryTimeoutMs: 200 });
    const err = await errorOf(() => sql`select sleep(2)`.execute(slow.kysely));
    await slow.close();
    expectKind(err, 'timeout');
    expect(isStorageUnavailable(err)).toBe(true);
    expect(isDatabaseUnreachable(err)).toBe(true);
    expect(committedNothing(engine, err)).toBe(false);
    const limited = await errorOf(() => sql`set statement max_statement_time = 0.01 for select sleep(1)`.execute(db.kysely));
    expectKind(limited, 'timeout');
  });

  it.runIf(engine === 'mysql')('a write in a read-only transaction is read_only (503)', async () => {
    const err = await errorOf(() =>
      pinned(db, async (conn) => {
        await sql`start transaction read only`.execute(conn);
        try {
          await sql`update t set v = 0 where id = 1`.execute(conn);
        } finally {
          await sql`rollback`.execute(conn);
        }
      }),
    );
    expectKind(err, 'read_only');
    expect(isStorageUnavailable(err)).toBe(true);
  });

  it.runIf(engine === 'mysql')('a missing table or database, a refused login and a refused connect make the database unavailable (503)', async () => {
    const table = await errorOf(() => sql`select * from no_such_table`.execute(db.kysely));
    expectKind(table, 'unavailable');
    const url = new URL(MYSQL_URL!);
    url.pathname = '/no_such_database_here';
    const noDb = openDatabase(url.toString(), { poolSize: 1 });
    const missing = await errorOf(() => sql`select 1`.execute(noDb.kysely));
    await noDb.close();
    expectKind(missing, 'unavailable');
    url.pathname = '/';
    url.username = 'nobody_at_all';
    url.password = 'wrong';
    const denied = openDatabase(url.toString(), { poolSize: 1 });
    const login = await errorOf(() => sql`select 1`.execute(denied.kysely));
    await denied.close();
    expectKind(login, 'unavailable');
    const refused = openDatabase('mysql://root@127.0.0.1:1/nowhere', { poolSize: 1 });
    const connect = await errorOf(() => sql`select 1`.execute(refused.kysely));
    await refused.close();
    expectKind(connect, 'connection_lost');
    for (const err of [table, missing, login, connect]) expect(isStorageUnavailable(err)).toBe(true);
  });
});

describe('the retry helper', () => {
  const conflict = () => Object.assign(new Error('Deadlock found'), { code: 'ER_LOCK_DEADLOCK', errno: 1213, sqlState: '40001' });

  it('runs the work again on a conflict, up to the attempts, and gives up with the last error', async () => {
    let calls = 0;
    await expect(
      withDbRetry(
        async () => {
          calls++;
          throw conflict();
        },
        { attempts: 3 },
      ),
    ).rejects.toMatchObject({ code: 'ER_LOCK_DEADLOCK' });
    expect(calls).toBe(3);
    calls = 0;
    expect(await withDbRetry(async () => (++calls < 2 ? Promise.reject(conflict()) : 'ok'))).toBe('ok');
    expect(calls).toBe(2);
  });

  it('never runs the work again for an error of a kind it was not told to retry', async () => {
    let calls = 0;
    const dup = Object.assign(new Error('Duplicate entry'), { code: 'ER_DUP_ENTRY', errno: 1062, sqlState: '23000' });
    await expect(
      withDbRetry(async () => {
        calls++;
        throw dup;
      }),
    ).rejects.toBe(dup);
    expect(calls).toBe(1);
    calls = 0;
    expect(await withDbRetry(async () => (++calls < 2 ? Promise.reject(dup) : 'ok'), { retryOn: ['unique_violation'] })).toBe('ok');
    const lost = Object.assign(new Error('Connection lost'), { code: 'PROTOCOL_CONNECTION_LOST', fatal: true });
    calls = 0;
    await expect(
      withDbRetry(async () => {
        calls++;
        throw lost;
      }),
    ).rejects.toBe(lost);
    expect(calls).toBe(1);
  });
});
