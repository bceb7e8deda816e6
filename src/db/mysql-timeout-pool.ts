import type { Pool, PoolConnection } from 'mysql2';

type Callback = (err: (Error & { code?: string; fatal?: boolean }) | null, result?: unknown) => void;

/**
 * The slice of a mysql2 pool Kysely's MysqlDialect uses, with a per-query time limit. mysql2 has no default
 * query timeout: behind a silent network partition a query would wait for the kernel's TCP timeout
 * (~15 min) and every request with it. A query past `timeoutMs` fails as a fatal storage error (→ 503) and
 * its connection is destroyed, so the pool opens a fresh one instead of reusing a stuck socket.
 */
export function withQueryTimeout(pool: Pool, timeoutMs: number) {
  const make = (conn: PoolConnection) => ({
    query(sql: string, values: unknown[], callback?: Callback) {
      if (typeof callback !== 'function') return conn.query(sql, values); // streaming: no timeout
      return conn.query({ sql, values, timeout: timeoutMs }, (error: unknown, result: unknown) => {
        const err = error as Parameters<Callback>[0];
        if (err && err.code === 'PROTOCOL_SEQUENCE_TIMEOUT') {
          err.fatal = true;
          conn.destroy();
        }
        callback(err, result);
      });
    },
    // Bound to the real connection: the pool must get its own object back, not this wrapper.
    release: () => conn.release(),
    destroy: () => conn.destroy(),
  });
  // One wrapper per pooled connection: Kysely keeps its per-connection state keyed by the object it is handed.
  const wrappers = new WeakMap<PoolConnection, ReturnType<typeof make>>();
  const wrap = (conn: PoolConnection) => {
    let wrapper = wrappers.get(conn);
    if (!wrapper) {
      wrapper = make(conn);
      wrappers.set(conn, wrapper);
    }
    return wrapper;
  };
  return {
    getConnection(callback: (err: unknown, connection: ReturnType<typeof wrap>) => void) {
      pool.getConnection((err, conn) => callback(err, err ? (undefined as never) : wrap(conn)));
    },
    end(callback: (err: unknown) => void) {
      pool.end(callback);
    },
    on: pool.on.bind(pool),
  };
}
