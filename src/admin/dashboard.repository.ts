import { sql } from 'kysely';
import type { Database, Executor } from '../db/database.ts';
import { ORDER_STATUSES, type OrderStatus } from '../orders/order.schema.ts';
import { VERDICTS } from './verdicts.ts';

/**
 * Dashboard figures. Every query is an index range scan whose cost follows the window's traffic, not the
 * table size: per-status counts seek (status, created_at) or (status, next_attempt_at); the hourly callback
 * counts seek (verdict, created_at) for each known verdict and read nothing but that index.
 */

const count = (rows: { n: unknown } | undefined) => Number(rows?.n ?? 0);

/** Orders created since `since`, by status (index orders_status_created_idx). */
export async function ordersByStatus(db: Executor, since: string): Promise<Record<OrderStatus, number>> {
  const counts = await Promise.all(
    ORDER_STATUSES.map((status) =>
      db.selectFrom('orders').select((eb) => eb.fn.countAll().as('n')).where('status', '=', status).where('created_at', '>=', since).executeTakeFirst(),
    ),
  );
  return Object.fromEntries(ORDER_STATUSES.map((status, i) => [status, count(counts[i])])) as Record<OrderStatus, number>;
}

/** Payment-log entries since `since` by hour (`YYYY-MM-DD HH`, UTC) and verdict (covering index payment_logs_verdict_idx). */
export async function callbacksByHour(db: Database, since: string): Promise<Array<{ hour: string; verdict: string; n: number }>> {
  // SQLite stores the time as text; MySQL as DATETIME(3), whose text form DATE_FORMAT gives explicitly.
  const hour = db.engine === 'mysql' ? sql<string>`date_format(created_at, '%Y-%m-%d %H')` : sql<string>`substr(created_at, 1, 13)`;
  const rows = await db.kysely
    .selectFrom('payment_logs')
    .select([hour.as('hour'), 'verdict', (eb) => eb.fn.countAll().as('n')])
    .where('verdict', 'in', VERDICTS)
    .where('created_at', '>=', since)
    .groupBy(['verdict', hour])
    .execute();
  return rows.map((r) => ({ hour: String(r.hour), verdict: r.verdict, n: Number(r.n) }));
}

export const SETTLED = ['delivered', 'dead', 'abandoned'] as const;
export const QUEUED = ['pending', 'delivering'] as const;
export type DeliveryStatus = (typeof SETTLED)[number] | (typeof QUEUED)[number];

/**
 * Notification events by status (index notifications_due_idx on status, next_attempt_at): settled ones whose
 * last attempt was since `since` (a settled row's next_attempt_at is the time it settled), and everything queued now.
 */
export async function deliveriesByStatus(db: Executor, since: string): Promise<Record<DeliveryStatus, number>> {
  const base = () => db.selectFrom('notifications').select((eb) => eb.fn.countAll().as('n'));
  const [settled, queued] = await Promise.all([
    Promise.all(SETTLED.map((status) => base().where('status', '=', status).where('next_attempt_at', '>=', since).executeTakeFirst())),
    Promise.all(QUEUED.map((status) => base().where('status', '=', status).executeTakeFirst())),
  ]);
  return {
    ...(Object.fromEntries(SETTLED.map((s, i) => [s, count(settled[i])])) as Record<(typeof SETTLED)[number], number>),
    ...(Object.fromEntries(QUEUED.map((s, i) => [s, count(queued[i])])) as Record<(typeof QUEUED)[number], number>),
  };
}
