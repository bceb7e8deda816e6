import type { Executor } from '../db/database.ts';
import { toDbTime } from '../shared/time.ts';

const BATCH = 2000;

/**
 * Deletes rows older than `before` in batches (ids first: MariaDB refuses LIMIT inside IN subqueries), so a
 * large purge never holds long locks. Returns how many rows went.
 */
async function purgeOlderThan(
  db: Executor,
  table: 'payment_logs' | 'notification_attempts' | 'reconcile_attempts',
  column: 'created_at' | 'started_at',
  before: Date,
): Promise<number> {
  let total = 0;
  for (;;) {
    const ids = await db
      .selectFrom(table)
      .select('id')
      .where(column as 'created_at', '<', toDbTime(before) as never)
      .orderBy('id')
      .limit(BATCH)
      .execute();
    if (ids.length === 0) return total;
    await db
      .deleteFrom(table)
      .where(
        'id',
        'in',
        ids.map((r) => r.id),
      )
      .execute();
    total += ids.length;
    if (ids.length < BATCH) return total;
  }
}

export function purgePaymentLogs(db: Executor, before: Date): Promise<number> {
  return purgeOlderThan(db, 'payment_logs', 'created_at', before);
}

export function purgeDeliveryAttempts(db: Executor, before: Date): Promise<number> {
  return purgeOlderThan(db, 'notification_attempts', 'started_at', before);
}

/** The reconciler's looks at gateways (the order timeline's questions), kept as long as the payment logs. */
export function purgeReconcileAttempts(db: Executor, before: Date): Promise<number> {
  return purgeOlderThan(db, 'reconcile_attempts', 'created_at', before);
}
