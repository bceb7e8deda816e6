import { CompiledQuery } from 'kysely';
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

const COLUMNS = ['id', 'event_id', 'url', 'payload', 'attempts', 'schedule_step'] as const;
type DueRow = ClaimedEvent & { next_attempt_at: string };

/**
 * Leases up to `limit` due events to `owner`. A lease is stored as next_attempt_at, so an expired lease is
 * simply due again and one index (status, next_attempt_at) serves both. MySQL: FOR UPDATE SKIP LOCKED, so
 * several instances never claim the same row; SQLite: one writer, so one UPDATE … RETURNING is atomic.
 */
export async function claimDueEvents(db: Database, owner: string, limit: number, leaseMs: number, now: Date): Promise<ClaimedEvent[]> {
  const nowText = toDbTime(now);
  const leaseUntil = toDbTime(new Date(now.getTime() + leaseMs));
  const lease = { status: 'delivering', lease_owner: owner, lease_expires_at: leaseUntil, next_attempt_at: leaseUntil, updated_at: nowText };
  if (db.engine === 'sqlite') {
    const due = db.kysely.selectFrom('notifications').select('id').where('status', 'in', CLAIMABLE).where('next_attempt_at', '<=', nowText).orderBy('next_attempt_at').limit(limit);
    return db.kysely.updateTable('notifications').set(lease).where('id', 'in', due).returning(COLUMNS).execute();
  }
  return withBatchedTransaction(db, async (tx) => {
    // One read per status: with both in one IN list, MariaDB sorts every due row (filesort) and locks them all.
    const due = (status: (typeof CLAIMABLE)[number]) =>
      tx.db.selectFrom('notifications').select([...COLUMNS, 'next_attempt_at']).where('status', '=', status).where('next_attempt_at', '<=', nowText).orderBy('next_attempt_at').limit(limit).forUpdate().skipLocked();
    // READ COMMITTED (no gap locks that would block outbox inserts) can only be set between transactions: end the empty one first.
    const [, , , expired, pending] = await tx.send(CompiledQuery.raw('commit'), CompiledQuery.raw('set transaction isolation level read committed'), CompiledQuery.raw('begin'), due('delivering'), due('pending'));
    const rows = [...(expired!.rows as DueRow[]), ...(pending!.rows as DueRow[])].sort((a, b) => (a.next_attempt_at < b.next_attempt_at ? -1 : a.next_attempt_at > b.next_attempt_at ? 1 : 0)).slice(0, limit);
    await tx.commit(...(rows.length > 0 ? [tx.db.updateTable('notifications').set(lease).where('id', 'in', rows.map((r) => r.id))] : []));
    return rows.map(({ next_attempt_at: _, ...row }) => row);
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
