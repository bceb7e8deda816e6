import { UnexpectedRowCount } from './fast-path/batched-transaction.ts';
import type { Engine } from './database.ts';

/**
 * What a failed database call means, for both engines. The one place errors of mysql2 (`code`, `errno`,
 * `fatal`) and better-sqlite3 (`code`, extended result codes) are read; every retry, 503 and "may run
 * again" decision is taken from this.
 */
export type DbErrorKind =
  /** A unique or primary key already holds the value (nothing was written by that statement). */
  | 'unique_violation'
  /** The server chose this transaction as a deadlock victim and rolled it back: running it again is the remedy. */
  | 'deadlock'
  /** A lock was not granted in time (innodb_lock_wait_timeout, SQLite's busy_timeout): the statement did nothing. */
  | 'lock_timeout'
  /** The connection is gone or was never made: whatever was in flight may or may not have committed. */
  | 'connection_lost'
  /** No answer within the query time limit (the connection was dropped), or the query was interrupted. */
  | 'timeout'
  /** The server or file refuses writes (read-only replica, --read-only, a read-only file). */
  | 'read_only'
  /** The database cannot do any work now: missing schema or database, refused login, too many connections, disk full or corrupt. */
  | 'unavailable'
  /** The server refused one statement (a constraint, bad data, a row-count guard): the connection is fine. */
  | 'statement'
  /** Not a database error. */
  | 'other';

/** Server errors by number: mysql2 names only MySQL's own codes (MariaDB's 1927 and 1969 arrive without a `code`). */
const MYSQL_ERRNOS: Record<number, DbErrorKind> = {
  1062: 'unique_violation', // ER_DUP_ENTRY
  1586: 'unique_violation', // ER_DUP_ENTRY_WITH_KEY_NAME
  1213: 'deadlock', // ER_LOCK_DEADLOCK
  1205: 'lock_timeout', // ER_LOCK_WAIT_TIMEOUT
  1317: 'timeout', // ER_QUERY_INTERRUPTED
  1969: 'timeout', // MariaDB ER_STATEMENT_TIMEOUT (max_statement_time)
  3024: 'timeout', // MySQL ER_QUERY_TIMEOUT (max_execution_time)
  1053: 'connection_lost', // ER_SERVER_SHUTDOWN
  1927: 'connection_lost', // MariaDB ER_CONNECTION_KILLED
  1290: 'read_only', // ER_OPTION_PREVENTS_STATEMENT (--read-only)
  1836: 'read_only', // ER_READ_ONLY_MODE
  1792: 'read_only', // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
  1040: 'unavailable', // ER_CON_COUNT_ERROR
  1044: 'unavailable', // ER_DBACCESS_DENIED_ERROR
  1045: 'unavailable', // ER_ACCESS_DENIED_ERROR
  1049: 'unavailable', // ER_BAD_DB_ERROR
  1146: 'unavailable', // ER_NO_SUCH_TABLE
  1192: 'unavailable', // ER_LOCK_OR_ACTIVE_TRANSACTION
};

/** Errors of the client side (mysql2's own codes and the socket's), which carry no server error number. */
const CLIENT_CODES: Record<string, DbErrorKind> = {
  PROTOCOL_SEQUENCE_TIMEOUT: 'timeout',
  PROTOCOL_CONNECTION_LOST: 'connection_lost',
  ECONNREFUSED: 'connection_lost',
  ECONNRESET: 'connection_lost',
  ETIMEDOUT: 'connection_lost',
  EPIPE: 'connection_lost',
  ENOTFOUND: 'connection_lost',
  EHOSTUNREACH: 'connection_lost',
  POOL_CLOSED: 'connection_lost',
  POOL_ENQUEUELIMIT: 'unavailable',
};

/** better-sqlite3 reports extended result codes (SQLITE_BUSY_SNAPSHOT, SQLITE_CONSTRAINT_UNIQUE…): matched longest first. */
const SQLITE_CODES: Array<[string, DbErrorKind]> = [
  ['SQLITE_CONSTRAINT_UNIQUE', 'unique_violation'],
  ['SQLITE_CONSTRAINT_PRIMARYKEY', 'unique_violation'],
  // WAL: a read transaction cannot become a write transaction after another wrote; SQLite does not wait, only a rerun helps.
  ['SQLITE_BUSY_SNAPSHOT', 'deadlock'],
  ['SQLITE_BUSY', 'lock_timeout'],
  ['SQLITE_LOCKED', 'lock_timeout'],
  ['SQLITE_READONLY', 'read_only'],
  ['SQLITE_IOERR', 'unavailable'],
  ['SQLITE_FULL', 'unavailable'],
  ['SQLITE_CANTOPEN', 'unavailable'],
  ['SQLITE_CORRUPT', 'unavailable'],
  ['SQLITE_NOTADB', 'unavailable'],
];

/** A handle closed under the caller: Kysely after destroy(), better-sqlite3 after close(), a mysql2 pool after end(). */
const CLOSED = /driver has already been destroyed|connection is not open|Pool is closed/i;

export function classifyDbError(err: unknown): DbErrorKind {
  if (err instanceof UnexpectedRowCount) return 'statement';
  if (typeof err !== 'object' || err === null) return 'other';
  const e = err as { code?: unknown; errno?: unknown; sqlState?: unknown; fatal?: unknown; message?: unknown };
  if (typeof e.errno === 'number' && typeof e.sqlState === 'string') {
    const known = MYSQL_ERRNOS[e.errno];
    if (known) return known;
  }
  if (typeof e.code === 'string') {
    const known = CLIENT_CODES[e.code];
    if (known) return known;
    if (e.code.startsWith('SQLITE_')) {
      for (const [prefix, kind] of SQLITE_CODES) if (e.code.startsWith(prefix)) return kind;
      return 'statement';
    }
  }
  // mysql2 marks errors after which the connection is unusable as fatal; an unknown fatal code is a lost connection.
  if (e.fatal === true) return 'connection_lost';
  if (typeof e.errno === 'number' && typeof e.sqlState === 'string') return 'statement';
  if (typeof e.message === 'string' && CLOSED.test(e.message)) return 'connection_lost';
  return 'other';
}

export const isUniqueViolation = (err: unknown): boolean => classifyDbError(err) === 'unique_violation';

const UNAVAILABLE = new Set<DbErrorKind>(['deadlock', 'lock_timeout', 'connection_lost', 'timeout', 'read_only', 'unavailable']);

/** The database is out of reach or refused the work for now: answer 503, the client may retry. */
export const isStorageUnavailable = (err: unknown): boolean => UNAVAILABLE.has(classifyDbError(err));

/** The database cannot be reached at all: work queued behind the failure would fail the same way. */
export function isDatabaseUnreachable(err: unknown): boolean {
  const kind = classifyDbError(err);
  return kind === 'connection_lost' || kind === 'timeout';
}

/**
 * Whether a transaction that failed with `err` certainly committed nothing, so running its work again cannot
 * apply it twice. SQLite runs in-process, so any failure before COMMIT returned left nothing; on MySQL only an
 * error the server answered does (a lost or timed-out connection may have committed).
 */
export function committedNothing(engine: Engine, err: unknown): boolean {
  if (engine === 'sqlite') return true;
  const kind = classifyDbError(err);
  return kind !== 'connection_lost' && kind !== 'timeout' && kind !== 'other';
}

/** One statement was refused while the connection stayed fine: splitting a batch can save the statements not at fault. */
export function isStatementRefusal(err: unknown): boolean {
  const kind = classifyDbError(err);
  return kind === 'unique_violation' || kind === 'deadlock' || kind === 'statement';
}

/** Conflicts with another transaction: the documented remedy is to run the whole transaction again. */
export const CONFLICTS: readonly DbErrorKind[] = ['deadlock', 'lock_timeout'];

/**
 * Runs `work` (a whole transaction) again, up to `attempts` times in all, while it fails with an error of one
 * of the `retryOn` kinds, after a short randomised pause; any other error, or the last one, is thrown.
 */
export async function withDbRetry<T>(work: () => Promise<T>, options: { attempts?: number; retryOn?: readonly DbErrorKind[] } = {}): Promise<T> {
  const { attempts = 3, retryOn = CONFLICTS } = options;
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (err) {
      if (attempt >= attempts || !retryOn.includes(classifyDbError(err))) throw err;
      await new Promise((resolve) => setTimeout(resolve, 5 * attempt + Math.random() * 10));
    }
  }
}
