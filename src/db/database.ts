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

function openMysql(url: string, poolSize: number, queryTimeoutMs: number): Kysely<DB> {
  const pool = createPool({
    uri: url,
    connectionLimit: poolSize,
    // Times travel as UTC strings on both engines; BIGINT amounts fit in a JS number (see money.ts).
    dateStrings: true,
    timezone: 'Z',
    supportBigNumbers: true,
    bigNumberStrings: false,
    charset: 'utf8mb4',
    connectTimeout: 5000,
    enableKeepAlive: true,
    // Batched transactions (fast-path/batched-transaction.ts) send several statements per round trip. Every value
    // is still a bound parameter, and no statement text in src is built from strings.
    multipleStatements: true,
  });
  pool.on('connection', (conn) => {
    conn.query("SET time_zone = '+00:00'");
  });
  return new Kysely<DB>({ dialect: new MysqlDialect({ pool: withQueryTimeout(pool, queryTimeoutMs) as never }) });
}

export function openDatabase(url: string, options: { poolSize?: number; queryTimeoutMs?: number } = {}): Database {
  const engine = engineOf(url);
  const kysely = engine === 'mysql' ? openMysql(url, options.poolSize ?? 16, options.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS) : openSqlite(url);
  return { engine, kysely, close: () => kysely.destroy() };
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
