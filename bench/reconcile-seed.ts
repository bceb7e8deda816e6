import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import mysql from 'mysql2/promise';

/**
 * The reconcile scenario's orders, written straight into the service's MariaDB database: stale pending
 * generic orders (due for a look now, expiring in an hour), and what the database says about them afterwards.
 */

const INSERT_BATCH = 1000;

/** UTC `YYYY-MM-DD HH:MM:SS.mmm`, as the service stores DATETIME(3). */
export const dbTime = (date: Date) => date.toISOString().replace('T', ' ').replace('Z', '');

/** Order number `<prefix>_<amount_minor>_<n>`: the query server answers `success` with the amount it names. */
export const staleOrderNo = (prefix: string, n: number, amountMinor: number) => `${prefix}_${amountMinor}_${n.toString(36)}`;
/** Amounts from 10.00 to 99.99 CNY, varied so that a wrong amount applied would show as a mismatch. */
export const amountOf = (n: number) => 1000 + ((n * 7919) % 9000);

/** Inserts `count` pending generic orders with reconcile_at = now (multi-row INSERTs); resolves when all are committed. */
export async function seedStaleOrders(url: string, prefix: string, count: number, notifyUrl: string | null): Promise<{ seconds: number }> {
  const started = performance.now();
  const conn = await mysql.createConnection({ uri: url });
  try {
    const now = new Date();
    const due = dbTime(now);
    const created = dbTime(new Date(now.getTime() - 60_000)); // made a minute ago: its callback is overdue
    const expires = dbTime(new Date(now.getTime() + 3_600_000));
    const columns = 'order_no, amount_minor, currency, status, payment_method, notify_url, created_at, updated_at, expires_at, reconcile_at, reconcile_step';
    for (let done = 0; done < count; done += INSERT_BATCH) {
      const rows = Array.from({ length: Math.min(INSERT_BATCH, count - done) }, (_, i) => {
        const n = done + i;
        const amount = amountOf(n);
        return [staleOrderNo(prefix, n, amount), amount, 'CNY', 'pending', 'generic', notifyUrl, created, created, expires, due, 0];
      });
      await conn.query(`INSERT INTO orders (${columns}) VALUES ?`, [rows]);
    }
  } finally {
    await conn.end();
  }
  return { seconds: Number(((performance.now() - started) / 1000).toFixed(2)) };
}

/** The notify scenario's orders are not the reconciler's: no look is scheduled for them (the query server would answer `pending`). */
export async function parkOrders(url: string, like: string): Promise<number> {
  const conn = await mysql.createConnection({ uri: url });
  try {
    const [result] = await conn.query("UPDATE orders SET reconcile_at = NULL WHERE order_no LIKE ? AND status = 'pending'", [like]);
    return (result as { affectedRows: number }).affectedRows;
  } finally {
    await conn.end();
  }
}

export interface PaidProgress {
  /** Seconds from `since` until every order was paid; null when `timeoutMs` passed first. */
  all_paid_after_s: number | null;
  paid: number;
  /** [seconds since `since`, paid] every `everyMs`. */
  timeline: Array<[number, number]>;
}

/** Polls `SELECT COUNT(*) … status = 'paid'` for the orders matching `like` until `count` are paid, `timeoutMs` passes or `stop` fires. */
export async function waitForPaid(
  url: string,
  like: string,
  count: number,
  o: { since: number; timeoutMs: number; everyMs: number; onTick?: (paid: number) => void; stop?: AbortSignal },
): Promise<PaidProgress> {
  const conn = await mysql.createConnection({ uri: url });
  const timeline: Array<[number, number]> = [];
  try {
    for (;;) {
      const [rows] = await conn.query("SELECT COUNT(*) AS n FROM orders WHERE order_no LIKE ? AND status = 'paid'", [like]);
      const paid = Number((rows as Array<{ n: number }>)[0]?.n ?? 0);
      const at = (performance.now() - o.since) / 1000;
      timeline.push([Number(at.toFixed(2)), paid]);
      o.onTick?.(paid);
      if (paid >= count) return { all_paid_after_s: Number(at.toFixed(2)), paid, timeline };
      if (performance.now() - o.since > o.timeoutMs || o.stop?.aborted) return { all_paid_after_s: null, paid, timeline };
      await sleep(o.everyMs);
    }
  } finally {
    await conn.end();
  }
}

const grouped = async (conn: mysql.Connection, query: string, like: string) => {
  const [rows] = await conn.query(query, [like]);
  return Object.fromEntries((rows as Array<{ k: string; n: number }>).map((r) => [r.k, Number(r.n)]));
};

/** How the database saw a batch: orders by status, payment-log rows by kind/verdict, looks by outcome, outbox rows by status. */
export async function batchChecks(url: string, like: string) {
  const conn = await mysql.createConnection({ uri: url });
  try {
    return {
      orders_by_status: await grouped(conn, 'SELECT status AS k, COUNT(*) AS n FROM orders WHERE order_no LIKE ? GROUP BY status', like),
      orders_flagged: Object.values(await grouped(conn, 'SELECT 1 AS k, COUNT(*) AS n FROM orders WHERE order_no LIKE ? AND flagged <> 0', like))[0] ?? 0,
      payment_logs: await grouped(
        conn,
        "SELECT CONCAT(kind, '/', verdict) AS k, COUNT(*) AS n FROM payment_logs WHERE order_no LIKE ? GROUP BY kind, verdict",
        like,
      ),
      reconcile_attempts: await grouped(conn, 'SELECT outcome AS k, COUNT(*) AS n FROM reconcile_attempts WHERE order_no LIKE ? GROUP BY outcome', like),
      outbox: await grouped(conn, 'SELECT status AS k, COUNT(*) AS n FROM notifications WHERE order_no LIKE ? GROUP BY status', like),
    };
  } finally {
    await conn.end();
  }
}
