import { joinStatements, type Results, type Statements } from '../db/fast-path/batch-statements.ts';
import { withBatchedTransaction, type BatchedTransaction } from '../db/fast-path/batched-transaction.ts';
import type { Database, Executor } from '../db/database.ts';
import { listQueryTemplate, queryTemplate } from '../db/fast-path/query-template.ts';
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

interface Lease {
  delivering: string;
  owner: string;
  leaseUntil: string;
  now: string;
}
const LEASE_INPUTS = { delivering: true, owner: true, leaseUntil: true, now: true } as const;
const leaseSet = (v: Lease) => ({
  status: v.delivering,
  lease_owner: v.owner,
  lease_expires_at: v.leaseUntil,
  next_attempt_at: v.leaseUntil,
  updated_at: v.now,
});

// The claim runs on every cycle of the loop: its statements are compiled once per database (query-template.ts).
const dueTemplate = queryTemplate({ status: true, now: true, limit: true }, (db, v: { status: string; now: string; limit: number }) =>
  db
    .selectFrom('notifications')
    .select([...COLUMNS, 'next_attempt_at'])
    .where('status', '=', v.status)
    .where('next_attempt_at', '<=', v.now)
    .orderBy('next_attempt_at')
    .limit(v.limit)
    .forUpdate()
    .skipLocked(),
);
const leaseTemplate = listQueryTemplate(LEASE_INPUTS, { id: true }, 1024, (db, v: Lease, rows: readonly { id: number }[]) =>
  db
    .updateTable('notifications')
    .set(leaseSet(v))
    .where(
      'id',
      'in',
      rows.map((r) => r.id),
    ),
);
const sqliteClaimTemplate = queryTemplate({ ...LEASE_INPUTS, pending: true, limit: true }, (db, v: Lease & { pending: string; limit: number }) =>
  db
    .updateTable('notifications')
    .set(leaseSet(v))
    .where(
      'id',
      'in',
      db
        .selectFrom('notifications')
        .select('id')
        .where('status', 'in', [v.pending, v.delivering])
        .where('next_attempt_at', '<=', v.now)
        .orderBy('next_attempt_at')
        .limit(v.limit),
    )
    .returning(COLUMNS),
);

/**
 * Sends `before` (the first statements of `tx`) and leases up to `limit` due events to `owner` in the same
 * transaction, then commits; returns the results of `before` (by name) and the claimed events. A lease is stored as
 * next_attempt_at, so an expired lease is simply due again and one index (status, next_attempt_at) serves
 * both. MySQL: FOR UPDATE SKIP LOCKED, so several instances never claim the same row, in two round trips;
 * SQLite: one writer, so one UPDATE … RETURNING is atomic.
 */
export async function claimInTransaction<S extends Statements>(
  tx: BatchedTransaction,
  engine: Database['engine'],
  before: S,
  owner: string,
  limit: number,
  leaseMs: number,
  now: Date,
): Promise<{ results: Results<S>; claimed: ClaimedEvent[] }> {
  const lease: Lease = { delivering: 'delivering', owner, leaseUntil: toDbTime(new Date(now.getTime() + leaseMs)), now: toDbTime(now) };
  if (engine === 'sqlite') {
    const claim = { claim: sqliteClaimTemplate.bind(tx.db, { ...lease, pending: 'pending', limit }) };
    const results: Results<S> & Results<typeof claim> = await tx.commit(joinStatements(before, claim));
    return { results, claimed: results.claim.rows as ClaimedEvent[] };
  }
  // One read per status: with both in one IN list, MariaDB sorts every due row (filesort) and locks them all.
  const due = (status: string) => dueTemplate.bind(tx.db, { status, now: lease.now, limit });
  // READ COMMITTED: no gap locks that would block concurrent outbox inserts.
  const reads = { dueExpired: due('delivering'), duePending: due('pending') };
  const results: Results<S> & Results<typeof reads> = await tx.readCommitted().send(joinStatements(before, reads));
  const rows = [...(results.dueExpired.rows as DueRow[]), ...(results.duePending.rows as DueRow[])]
    .sort((a, b) => (a.next_attempt_at < b.next_attempt_at ? -1 : a.next_attempt_at > b.next_attempt_at ? 1 : 0))
    .slice(0, limit);
  await tx.commit({ lease: rows.length > 0 ? leaseTemplate.bind(tx.db, lease, rows) : undefined });
  return { results, claimed: rows.map(({ next_attempt_at: _, ...row }) => row) };
}

/** Leases up to `limit` due events to `owner` (see claimInTransaction). */
export async function claimDueEvents(db: Database, owner: string, limit: number, leaseMs: number, now: Date): Promise<ClaimedEvent[]> {
  return withBatchedTransaction(db, async (tx) => (await claimInTransaction(tx, db.engine, {}, owner, limit, leaseMs, now)).claimed);
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
  const latest = await db
    .selectFrom('notifications')
    .select(['id', 'event_id', 'status'])
    .where('order_no', '=', orderNo)
    .orderBy('seq', 'desc')
    .limit(1)
    .executeTakeFirst();
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
  const backlog = await db
    .selectFrom('notifications')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('status', 'in', CLAIMABLE)
    .executeTakeFirst();
  const oldest = await db
    .selectFrom('notifications')
    .select((eb) => eb.fn.min('next_attempt_at').as('at'))
    .where('status', '=', 'pending')
    .where('next_attempt_at', '<=', toDbTime(now))
    .executeTakeFirst();
  return { backlog: Number(backlog?.n ?? 0), oldestDueAt: (oldest?.at as string | null | undefined) ?? null };
}
