import type { Database, Executor } from '../db/database.ts';
import type { RefundRow } from '../orders/refund.repository.ts';
import { toDbTime } from '../shared/time.ts';

/** Pending refunds whose look is due, soonest first (the index (status, check_at)). */
const dueRefunds = (db: Executor, now: Date, limit: number) =>
  db.selectFrom('refunds').where('status', '=', 'pending').where('check_at', '<=', toDbTime(now)).orderBy('check_at').limit(limit);

/**
 * Leases up to `limit` due pending refunds to `owner`, the lease stored as check_at (a crashed instance's refunds
 * are due again when it runs out). MySQL: FOR UPDATE SKIP LOCKED; SQLite: one atomic UPDATE … RETURNING.
 */
export async function claimDueRefunds(db: Database, owner: string, limit: number, leaseMs: number, now: Date): Promise<RefundRow[]> {
  const lease = { check_at: toDbTime(new Date(now.getTime() + leaseMs)), check_lease: owner };
  if (db.engine === 'sqlite') {
    return db.kysely
      .updateTable('refunds')
      .set(lease)
      .where('id', 'in', dueRefunds(db.kysely, now, limit).select('id'))
      .returningAll()
      .execute();
  }
  return db.kysely.transaction().execute(async (trx) => {
    const rows = await dueRefunds(trx, now, limit).selectAll().forUpdate().skipLocked().execute();
    if (rows.length === 0) return [];
    await trx
      .updateTable('refunds')
      .set(lease)
      .where(
        'id',
        'in',
        rows.map((r) => r.id),
      )
      .execute();
    return rows.map((r) => ({ ...r, ...lease }));
  });
}

/** Records when to ask next, only while still pending and leased by `owner`. */
export async function finishRefundCheck(db: Executor, refundNo: string, owner: string, next: { at: Date; step: number }): Promise<void> {
  await db
    .updateTable('refunds')
    .set({ check_at: toDbTime(next.at), check_step: next.step, check_lease: null })
    .where('refund_no', '=', refundNo)
    .where('status', '=', 'pending')
    .where('check_lease', '=', owner)
    .execute();
}

/** On a stop that could not wait: the unfinished leases are due again at once. */
export async function releaseRefundLeases(db: Executor, owner: string, now: Date): Promise<number> {
  const result = await db
    .updateTable('refunds')
    .set({ check_at: toDbTime(now), check_lease: null })
    .where('check_lease', '=', owner)
    .where('status', '=', 'pending')
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}
