import type { Executor } from '../db/database.ts';
import { toDbTime } from '../shared/time.ts';

export type InboxFilter = 'unreviewed' | 'reviewed' | 'all';

/**
 * Flagged payment-log entries (unknown order, amount mismatch, double payment, late payment) with their
 * review, newest first: a walk down index payment_logs_flagged_idx (flagged, created_at). Flagged entries
 * are rare, so the anti-join for "unreviewed" stays cheap.
 */
function flagged(db: Executor, filter: InboxFilter) {
  let query = db.selectFrom('payment_logs as p').leftJoin('payment_log_reviews as r', 'r.payment_log_id', 'p.id').where('p.flagged', '=', 1);
  if (filter === 'unreviewed') query = query.where('r.id', 'is', null);
  if (filter === 'reviewed') query = query.where('r.id', 'is not', null);
  return query;
}

export function listFlagged(db: Executor, filter: InboxFilter, limit: number, offset: number) {
  return flagged(db, filter)
    .select([
      'p.id',
      'p.order_no',
      'p.gateway',
      'p.kind',
      'p.transaction_id',
      'p.amount_minor',
      'p.currency',
      'p.status',
      'p.verdict',
      'p.message',
      'p.payment_data',
      'p.callback_data',
      'p.remote_ip',
      'p.created_at',
      'r.reviewed_by',
      'r.note',
      'r.reviewed_at',
    ])
    .orderBy('p.created_at', 'desc')
    .orderBy('p.id', 'desc')
    .limit(limit)
    .offset(offset)
    .execute();
}

export type FlaggedEntry = Awaited<ReturnType<typeof listFlagged>>[number];

export async function countFlagged(db: Executor, filter: InboxFilter): Promise<number> {
  const row = await flagged(db, filter)
    .select((eb) => eb.fn.count('p.id').as('n'))
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

export function findFlaggedEntry(db: Executor, id: number) {
  return db.selectFrom('payment_logs').select(['id', 'order_no', 'verdict']).where('id', '=', id).where('flagged', '=', 1).executeTakeFirst();
}

/** Inserts the review; the unique payment_log_id makes a second review of the same entry fail (first one wins). */
export async function insertReview(db: Executor, review: { paymentLogId: number; reviewedBy: string; note: string; now: Date }): Promise<void> {
  await db
    .insertInto('payment_log_reviews')
    .values({ payment_log_id: review.paymentLogId, reviewed_by: review.reviewedBy.slice(0, 64), note: review.note, reviewed_at: toDbTime(review.now) })
    .execute();
}

/** Order numbers among `orderNos` that exist (an unknown-order entry gets no link to an order page). */
export async function existingOrders(db: Executor, orderNos: string[]): Promise<Set<string>> {
  if (orderNos.length === 0) return new Set();
  const rows = await db.selectFrom('orders').select('order_no').where('order_no', 'in', orderNos).execute();
  return new Set(rows.map((r) => r.order_no));
}
