/** Errors that mean "the database is unreachable or refused the work": answer 503, the client may retry. */
const CONNECTION_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH',
  'PROTOCOL_CONNECTION_LOST', 'PROTOCOL_SEQUENCE_TIMEOUT', 'POOL_CLOSED', 'POOL_ENQUEUELIMIT',
  'ER_CON_COUNT_ERROR', 'ER_LOCK_WAIT_TIMEOUT', 'ER_LOCK_DEADLOCK', 'ER_QUERY_INTERRUPTED',
  'ER_SERVER_SHUTDOWN', 'ER_OPTION_PREVENTS_STATEMENT', 'ER_ACCESS_DENIED_ERROR', 'ER_BAD_DB_ERROR',
  'ER_NO_SUCH_TABLE', 'ER_LOCK_OR_ACTIVE_TRANSACTION', 'ER_READ_ONLY_MODE',
]);
const SQLITE_CODES = /^SQLITE_(BUSY|LOCKED|IOERR|FULL|READONLY|CANTOPEN|CORRUPT|NOTADB)/;

export function isStorageUnavailable(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { code?: unknown; fatal?: unknown; message?: unknown };
  if (e.fatal === true) return true;
  if (typeof e.code === 'string' && (CONNECTION_CODES.has(e.code) || SQLITE_CODES.test(e.code))) return true;
  return typeof e.message === 'string' && /driver has already been destroyed|connection is not open|Pool is closed/i.test(e.message);
}
