import { withBatchedTransaction } from '../db/batched-transaction.ts';
import type { Database, Executor } from '../db/database.ts';
import { toDbTime } from '../shared/time.ts';

/** Statuses a delivery loop may pick up: due `pending` rows and `delivering` rows whose lease ran out. */
const CLAIMABLE = ['pending', 'delivering'] as const;

export interface ClaimedEvent {
  id: number;
  event_id: string;
  url: string;
  payload: string;
  attempts: number;
  schedule_step: number;
}

/**
 * Leases up to `limit` due events to `owner`. A lease is stored as next_attempt_at, so an expired lease is
 * simply due again and one index (status, next_attempt_at) serves both. MySQL: FOR UPDATE SKIP LOCKED, so
 * several instances never claim the same row; SQLite: one writer, a compare-and-swap per row.
 */
export async function claimDueEvents(db: Database, owner: string, limit: number, leaseMs: number, now: Date): Promise<ClaimedEvent[]> {
  const nowText = toDbTime(now);
  const leaseUntil = toDbTime(new Date(now.getTime() + leaseMs));
  const due = (executor: Executor) =>
    executor
      .selectFrom('notifications')
      .select(['id', 'event_id', 'url', 'payload', 'attempts', 'schedule_step'])
      .where('status', 'in', CLAIMABLE)
      .where('next_attempt_at', '<=', nowText)
      .orderBy('next_attempt_at')
      .limit(limit);
  const lease = { status: 'delivering', lease_owner: owner, lease_expires_at: leaseUntil, next_attempt_at: leaseUntil, updated_at: nowText };

  if (db.engine === 'mysql') {
    // READ COMMITTED: the claim must not take gap locks that block concurrent outbox inserts (deadlocks).
    return db.kysely.transaction().setIsolationLevel('read committed').execute(async (trx) => {
      const rows = await due(trx).forUpdate().skipLocked().execute();
      if (rows.length > 0) await trx.updateTable('notifications').set(lease).where('id', 'in', rows.map((r) => r.id)).execute();
      return rows;
    });
  }
  const rows = await due(db.kysely).execute();
  const claimed: ClaimedEvent[] = [];
  for (const row of rows) {
    const result = await db.kysely
      .updateTable('notifications')
      .set(lease)
      .where('id', '=', row.id)
      .where('status', 'in', CLAIMABLE)
      .where('next_attempt_at', '<=', nowText)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) > 0) claimed.push(row);
  }
  return claimed;
}

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
  now: Date;
}

/**
 * Records the attempt and the event's new state in one transaction, sent as one batch (one round trip on
 * MySQL); the state only changes while `owner` still holds the lease. Returns whether it did.
 */
export async function completeAttempt(db: Database, owner: string, attempt: AttemptRecord, update: EventUpdate): Promise<boolean> {
  return withBatchedTransaction(db, async (tx) => {
    const insert = tx.db.insertInto('notification_attempts').values({
      notification_id: attempt.notificationId,
      attempt_no: attempt.attemptNo,
      started_at: toDbTime(attempt.startedAt),
      duration_ms: attempt.durationMs,
      status_code: attempt.statusCode,
      error: attempt.error?.slice(0, 1024) ?? null,
      response_excerpt: attempt.excerpt,
    });
    const now = toDbTime(update.now);
    const change = tx.db
      .updateTable('notifications')
      .set((eb) => ({
        status: update.status,
        attempts: eb('attempts', '+', 1),
        next_attempt_at: update.nextAttemptAt ? toDbTime(update.nextAttemptAt) : now,
        ...(update.scheduleStep !== undefined ? { schedule_step: update.scheduleStep } : {}),
        lease_owner: null,
        lease_expires_at: null,
        last_error: update.lastError?.slice(0, 1024) ?? null,
        delivered_at: update.status === 'delivered' ? now : null,
        updated_at: now,
      }))
      .where('id', '=', attempt.notificationId)
      .where('lease_owner', '=', owner);
    const [, updated] = await tx.commit(insert, change);
    return (updated?.affectedRows ?? 0) > 0;
  });
}

/** On a graceful stop: hand this process's unfinished leases back so another instance delivers at once. */
export async function releaseLeases(db: Executor, owner: string, now: Date): Promise<number> {
  const result = await db
    .updateTable('notifications')
    .set({ status: 'pending', lease_owner: null, lease_expires_at: null, next_attempt_at: toDbTime(now), updated_at: toDbTime(now) })
    .where('lease_owner', '=', owner)
    .where('status', '=', 'delivering')
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** Queues a fresh delivery of the order's latest event (any final state); false when it has none. */
export async function requeueLatestEvent(db: Executor, orderNo: string, now: Date): Promise<{ eventId: string; status: string } | null> {
  const latest = await db.selectFrom('notifications').select(['id', 'event_id', 'status']).where('order_no', '=', orderNo).orderBy('seq', 'desc').limit(1).executeTakeFirst();
  if (!latest) return null;
  if (latest.status === 'delivering') return { eventId: latest.event_id, status: 'delivering' };
  const at = toDbTime(now);
  await db
    .updateTable('notifications')
    .set({ status: 'pending', schedule_step: 0, next_attempt_at: at, lease_owner: null, lease_expires_at: null, updated_at: at })
    .where('id', '=', latest.id)
    .where('status', '<>', 'delivering')
    .execute();
  return { eventId: latest.event_id, status: 'pending' };
}

/** Backlog and age of the oldest due event: two indexed reads, cheap enough for every metrics scrape. */
export async function backlogStats(db: Executor, now: Date): Promise<{ backlog: number; oldestDueAt: string | null }> {
  const backlog = await db.selectFrom('notifications').select((eb) => eb.fn.countAll<number>().as('n')).where('status', 'in', CLAIMABLE).executeTakeFirst();
  const oldest = await db
    .selectFrom('notifications')
    .select((eb) => eb.fn.min('next_attempt_at').as('at'))
    .where('status', '=', 'pending')
    .where('next_attempt_at', '<=', toDbTime(now))
    .executeTakeFirst();
  return { backlog: Number(backlog?.n ?? 0), oldestDueAt: (oldest?.at as string | null | undefined) ?? null };
}
