import { withBatchedTransaction, type Statement } from '../db/batched-transaction.ts';
import type { Database } from '../db/database.ts';
import { toDbTime } from '../shared/time.ts';

export interface AttemptRecord {
  notificationId: number;
  attemptNo: number;
  startedAt: Date;
  durationMs: number;
  statusCode: number | null;
  error: string | null;
  excerpt: string | null;
}

export interface EventUpdate {
  status: 'pending' | 'delivered' | 'dead' | 'abandoned';
  nextAttemptAt?: Date;
  scheduleStep?: number;
  lastError: string | null;
}

/** One finished delivery: the attempt to record and the state its event moves to. */
export interface Completion {
  attempt: AttemptRecord;
  update: EventUpdate;
}

/**
 * Records the attempts of several finished deliveries and their events' new states in one transaction, sent
 * as one batch (one round trip on MySQL). A state only changes while `owner` still holds the lease; the
 * result says, per completion, whether it did (the attempt is recorded either way).
 */
export async function completeAttempts(db: Database, owner: string, completions: readonly Completion[], now: Date): Promise<boolean[]> {
  if (completions.length === 0) return [];
  const at = toDbTime(now);
  const ids = completions.map((c) => c.attempt.notificationId);
  return withBatchedTransaction(db, async (tx) => {
    // The insert comes first: on SQLite it takes the write lock before anything is read.
    const insert = tx.db.insertInto('notification_attempts').values(
      completions.map(({ attempt }) => ({
        notification_id: attempt.notificationId,
        attempt_no: attempt.attemptNo,
        started_at: toDbTime(attempt.startedAt),
        duration_ms: attempt.durationMs,
        status_code: attempt.statusCode,
        error: attempt.error?.slice(0, 1024) ?? null,
        response_excerpt: attempt.excerpt,
      })),
    );
    // A locking read of the leases still held: the updates below (same owner condition) change exactly these rows.
    const held = tx.db.selectFrom('notifications').select('id').where('id', 'in', ids).where('lease_owner', '=', owner);
    const statements: Statement[] = [insert, db.engine === 'mysql' ? held.forUpdate() : held];

    const leaseCleared = { lease_owner: null, lease_expires_at: null, updated_at: at } as const;
    const delivered = completions.filter((c) => c.update.status === 'delivered').map((c) => c.attempt.notificationId);
    if (delivered.length > 0) {
      // The common case needs no per-row values: one statement for every delivered event of the batch.
      statements.push(
        tx.db
          .updateTable('notifications')
          .set((eb) => ({ ...leaseCleared, status: 'delivered', attempts: eb('attempts', '+', 1), next_attempt_at: at, last_error: null, delivered_at: at }))
          .where('id', 'in', delivered)
          .where('lease_owner', '=', owner),
      );
    }
    for (const { attempt, update } of completions) {
      if (update.status === 'delivered') continue;
      statements.push(
        tx.db
          .updateTable('notifications')
          .set((eb) => ({
            ...leaseCleared,
            status: update.status,
            attempts: eb('attempts', '+', 1),
            next_attempt_at: update.nextAttemptAt ? toDbTime(update.nextAttemptAt) : at,
            ...(update.scheduleStep !== undefined ? { schedule_step: update.scheduleStep } : {}),
            last_error: update.lastError?.slice(0, 1024) ?? null,
            delivered_at: null,
          }))
          .where('id', '=', attempt.notificationId)
          .where('lease_owner', '=', owner),
      );
    }
    const [, heldRows] = await tx.commit(...statements);
    const kept = new Set((heldRows?.rows as Array<{ id: number | string }> | undefined)?.map((r) => Number(r.id)));
    return ids.map((id) => kept.has(id));
  });
}
