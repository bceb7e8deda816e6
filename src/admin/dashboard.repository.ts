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
      db
        .selectFrom('orders')
        .select((eb) => eb.fn.countAll().as('n'))
        .where('status', '=', status)
        .where('created_at', '>=', since)
        .executeTakeFirst(),
    ),
  );
  return Object.fromEntries(ORDER_STATUSES.map((status, i) => [status, count(counts[i])])) as Record<OrderStatus, number>;
}

export type BucketUnit = 'hour' | 'day';

/**
 * Payment-log entries since `since` by verdict and hour (`YYYY-MM-DD HH`) or day (`YYYY-MM-DD`), UTC
 * (covering index payment_logs_verdict_idx).
 */
export async function callbacksByBucket(db: Database, since: string, unit: BucketUnit): Promise<Array<{ bucket: string; verdict: string; n: number }>> {
  // SQLite stores the time as text; MySQL as DATETIME(3), whose text form DATE_FORMAT gives explicitly.
  const bucket =
    db.engine === 'mysql'
      ? unit === 'hour'
        ? sql<string>`date_format(created_at, '%Y-%m-%d %H')`
        : sql<string>`date_format(created_at, '%Y-%m-%d')`
      : unit === 'hour'
        ? sql<string>`substr(created_at, 1, 13)`
        : sql<string>`substr(created_at, 1, 10)`;
  const rows = await db.kysely
    .selectFrom('payment_logs')
    .select([bucket.as('bucket'), 'verdict', (eb) => eb.fn.countAll().as('n')])
    .where('verdict', 'in', VERDICTS)
    .where('created_at', '>=', since)
    .groupBy(['verdict', bucket])
    .execute();
  return rows.map((r) => ({ bucket: String(r.bucket), verdict: r.verdict, n: Number(r.n) }));
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

/**
 * How long the delivery queue has been waiting: the creation time of its oldest event (events are numbered in
 * the order they are written; only the queued rows of the status index are read) and the earliest attempt
 * scheduled (an index seek).
 */
export async function queueTimes(db: Executor): Promise<{ oldestCreatedAt: string | null; nextAttemptAt: string | null }> {
  const firstIds = await Promise.all(
    QUEUED.map((status) =>
      db
        .selectFrom('notifications')
        .select((eb) => eb.fn.min('id').as('id'))
        .where('status', '=', status)
        .executeTakeFirst(),
    ),
  );
  const ids = firstIds
    .map((r) => r?.id)
    .filter((id) => id !== null && id !== undefined)
    .map(Number);
  const [oldest, next] = await Promise.all([
    ids.length === 0 ? undefined : db.selectFrom('notifications').select('created_at').where('id', 'in', ids).orderBy('created_at').limit(1).executeTakeFirst(),
    db
      .selectFrom('notifications')
      .select((eb) => eb.fn.min('next_attempt_at').as('at'))
      .where('status', '=', 'pending')
      .executeTakeFirst(),
  ]);
  return { oldestCreatedAt: oldest?.created_at ?? null, nextAttemptAt: (next?.at as string | null | undefined) ?? null };
}

/**
 * Payments the service learnt of only by asking the gateway (looks whose outcome was `recovered`), since
 * `since` and in all: range counts on reconcile_attempts (outcome, created_at), cheap at any size.
 */
export async function recoveredByQuery(db: Executor, since: string): Promise<{ recent: number; total: number }> {
  const base = () =>
    db
      .selectFrom('reconcile_attempts')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('outcome', '=', 'recovered');
  const [recent, total] = await Promise.all([base().where('created_at', '>=', since).executeTakeFirst(), base().executeTakeFirst()]);
  return { recent: count(recent), total: count(total) };
}
