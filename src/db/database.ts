import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import SQLite from 'better-sqlite3';
import { Kysely, MysqlDialect, SqliteDialect, sql, type Transaction } from 'kysely';
import { createPool } from 'mysql2';
import { withQueryTimeout } from './mysql-timeout-pool.ts';
import type { DB } from './schema.ts';

export type Engine = 'mysql' | 'sqlite';

/** A Kysely handle plus what the engine-specific code paths need to know. */
export interface Database {
  readonly engine: Engine;
  readonly kysely: Kysely<DB>;
  /**
   * Only for batched transactions (fast-path/batched-transaction.ts). MySQL: a Kysely over a pool of its own, the
   * only one that accepts several statements in one request; SQLite: `kysely` itself (statements run one by one).
   */
  readonly batchKysely: Kysely<DB>;
  close(): Promise<void>;
}

export type Executor = Kysely<DB> | Transaction<DB>;

export function engineOf(url: string): Engine {
  return url.startsWith('mysql://') ? 'mysql' : 'sqlite';
}

/** `sqlite:./data/x.db` → absolute path (directory created); `sqlite::memory:` stays in memory. */
function sqlitePath(url: string): string {
  const path = url.slice('sqlite:'.length);
  if (path === ':memory:') return path;
  const absolute = resolve(path);
  mkdirSync(dirname(absolute), { recursive: true });
  return absolute;
}

function openSqlite(url: string): Kysely<DB> {
  const file = new SQLite(sqlitePath(url));
  file.pragma('journal_mode = WAL');
  file.pragma('synchronous = NORMAL');
  file.pragma('busy_timeout = 5000');
  file.pragma('foreign_keys = ON');
  return new Kysely<DB>({ dialect: new SqliteDialect({ database: file }) });
}

/** A query that takes longer has lost its server (or is a bug): fail it as a storage error. */
const DEFAULT_QUERY_TIMEOUT_MS = 15_000;

/**
 * The share of a MySQL pool size kept for batched transactions (callbacks run at most two at a time, the delivery
 * loop one flush and one claim); the rest is the general pool. A size of 1 or 2 gives one connection to each.
 */
export function batchPoolSize(poolSize: number): number {
  return poolSize <= 2 ? 1 : Math.max(2, Math.floor(poolSize / 4));
}

function mysqlPool(url: string, connectionLimit: number, queryTimeoutMs: number, multipleStatements: boolean): { kysely: Kysely<DB>; end(): Promise<void> } {
  const pool = createPool({
    uri: url,
    connectionLimit,
    // Times travel as UTC strings on both engines; BIGINT amounts fit in a JS number (see money.ts).
    dateStrings: true,
    timezone: 'Z',
    supportBigNumbers: true,
    bigNumberStrings: false,
    charset: 'utf8mb4',
    connectTimeout: 5000,
    enableKeepAlive: true,
    multipleStatements,
  });
  pool.on('connection', (conn) => {
    conn.query("SET time_zone = '+00:00'");
  });
  let used = false;
  const kysely = new Kysely<DB>({
    dialect: new MysqlDialect({
      pool: async () => {
        used = true;
        return withQueryTimeout(pool, queryTimeoutMs) as never;
      },
    }),
  });
  return {
    kysely,
    async end() {
      if (used) return kysely.destroy();
      // Kysely ends only a pool it has used: end an unused one here, so nothing can open a connection after close.
      await new Promise<void>((resolve, reject) => pool.end((err) => (err ? reject(err) : resolve())));
    },
  };
}

/**
 * Two pools, connections opened on first use: the general one refuses several statements in one request (so no
 * query of the service can carry a second statement), and a batch-only one that accepts them, used only by
 * batched transactions, whose texts come from Kysely and whose values are all bound parameters.
 */
function openMysql(url: string, poolSize: number, queryTimeoutMs: number): Database {
  const batchSize = batchPoolSize(poolSize);
  const general = mysqlPool(url, Math.max(1, poolSize - batchSize), queryTimeoutMs, false);
  const batch = mysqlPool(url, batchSize, queryTimeoutMs, true);
  return {
    engine: 'mysql',
    kysely: general.kysely,
    batchKysely: batch.kysely,
    close: async () => {
      await Promise.all([general.end(), batch.end()]);
    },
  };
}

export function openDatabase(url: string, options: { poolSize?: number; queryTimeoutMs?: number } = {}): Database {
  if (engineOf(url) === 'mysql') return openMysql(url, options.poolSize ?? 16, options.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS);
  const kysely = openSqlite(url);
  return { engine: 'sqlite', kysely, batchKysely: kysely, close: () => kysely.destroy() };
}

/** A round trip to the database; throws when it does not answer. */
export async function pingDatabase(db: Database): Promise<void> {
  await sql`select 1`.execute(db.kysely);
}

/** The server's version string, e.g. `10.11.6-MariaDB` or `3.45.1` for SQLite. */
export async function databaseVersion(db: Database): Promise<string> {
  const query = db.engine === 'mysql' ? sql<{ v: string }>`select version() as v` : sql<{ v: string }>`select sqlite_version() as v`;
  const { rows } = await query.execute(db.kysely);
  return rows[0]?.v ?? 'unknown';
}
