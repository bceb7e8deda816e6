import { sql } from 'kysely';
import { withBatchedTransaction, type BatchedTransaction } from '../db/fast-path/batched-transaction.ts';
import type { Database, Executor } from '../db/database.ts';
import { listQueryTemplate, queryTemplate } from '../db/fast-path/query-template.ts';
import { toDbTime } from '../shared/time.ts';
import { claimInTransaction, type ClaimedEvent } from './delivery.repository.ts';

export interface AttemptRecord {
  notificationId: number;
  attemptNo: number;
  startedAt: Date;
  durationMs: number;
  statusCode: number | null;
  error: string | null;
  excerpt: string | null;
  /** Answered over a connection to a non-public address (private networks allowed). */
  privateTarget?: boolean;
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

/** Leases up to `limit` due events in the flush's transaction (see claimInTransaction). */
export interface FlushClaim {
  limit: number;
  leaseMs: number;
}

/** Bounds how many list lengths each template keeps compiled; a flush holds at most this many completions anyway. */
export const MAX_PER_FLUSH = 256;

// Written on every flush: compiled once per database and list length, only the values change (query-template.ts).
const attemptsInsert = listQueryTemplate(
  {},
  {
    notification_id: true,
    attempt_no: true,
    started_at: true,
    duration_ms: true,
    status_code: true,
    error: true,
    response_excerpt: true,
    private_target: true,
  },
  MAX_PER_FLUSH,
  (
    db,
    _v,
    rows: readonly {
      notification_id: number;
      attempt_no: number;
      started_at: string;
      duration_ms: number;
      status_code: number | null;
      error: string | null;
      response_excerpt: string | null;
      private_target: number;
    }[],
  ) => db.insertInto('notification_attempts').values([...rows]),
);
type Ids = readonly { id: number }[];
const heldSelect = (db: Executor, v: { owner: string }, rows: Ids) =>
  db
    .selectFrom('notifications')
    .select('id')
    .where(
      'id',
      'in',
      rows.map((r) => r.id),
    )
    .where('lease_owner', '=', v.owner);
const heldLocked = listQueryTemplate({ owner: true }, { id: true }, MAX_PER_FLUSH, (db, v: { owner: string }, rows: Ids) =>
  heldSelect(db, v, rows).forUpdate(),
);
const held = listQueryTemplate({ owner: true }, { id: true }, MAX_PER_FLUSH, heldSelect);
const leaseCleared = (at: string) => ({ lease_owner: sql.lit(null), lease_expires_at: sql.lit(null), updated_at: at });
// The common case needs no per-row values: one statement for every delivered event of the batch.
const deliveredUpdate = listQueryTemplate(
  { status: true, owner: true, at: true },
  { id: true },
  MAX_PER_FLUSH,
  (db, v: { status: string; owner: string; at: string }, rows: Ids) =>
    db
      .updateTable('notifications')
      .set((eb) => ({
        ...leaseCleared(v.at),
        status: v.status,
        attempts: eb('attempts', '+', sql.lit(1)),
        next_attempt_at: v.at,
        last_error: sql.lit(null),
        delivered_at: v.at,
      }))
      .where(
        'id',
        'in',
        rows.map((r) => r.id),
      )
      .where('lease_owner', '=', v.owner),
);
interface Outcome {
  id: number;
  owner: string;
  status: string;
  nextAttemptAt: string;
  scheduleStep: number | null;
  lastError: string | null;
  at: string;
}
const outcomeUpdate = queryTemplate(
  { id: true, owner: true, status: true, nextAttemptAt: true, scheduleStep: true, lastError: true, at: true },
  (db, v: Outcome) =>
    db
      .updateTable('notifications')
      .set((eb) => ({
        ...leaseCleared(v.at),
        status: v.status,
        attempts: eb('attempts', '+', sql.lit(1)),
        next_attempt_at: v.nextAttemptAt,
        schedule_step: eb.fn.coalesce(eb.val(v.scheduleStep), eb.ref('schedule_step')),
        last_error: v.lastError,
        delivered_at: sql.lit(null),
      }))
      .where('id', '=', v.id)
      .where('lease_owner', '=', v.owner),
);

/** The flush's statements: attempts inserted, still-held leases read (locked on MySQL), states changed where held. */
function completionStatements(tx: BatchedTransaction, engine: Database['engine'], owner: string, completions: readonly Completion[], at: string) {
  const delivered = completions.filter((c) => c.update.status === 'delivered').map((c) => ({ id: c.attempt.notificationId }));
  return {
    // The insert comes first: on SQLite it takes the write lock before anything is read.
    attempts: attemptsInsert.bind(
      tx.db,
      {},
      completions.map(({ attempt }) => ({
        notification_id: attempt.notificationId,
        attempt_no: attempt.attemptNo,
        started_at: toDbTime(attempt.startedAt),
        duration_ms: attempt.durationMs,
        status_code: attempt.statusCode,
        error: attempt.error?.slice(0, 1024) ?? null,
        response_excerpt: attempt.excerpt,
        private_target: attempt.privateTarget ? 1 : 0,
      })),
    ),
    // A locking read of the leases still held: the updates below (same owner condition) change exactly these rows.
    held: (engine === 'mysql' ? heldLocked : held).bind(
      tx.db,
      { owner },
      completions.map((c) => ({ id: c.attempt.notificationId })),
    ),
    delivered: delivered.length > 0 ? deliveredUpdate.bind(tx.db, { status: 'delivered', owner, at }, delivered) : undefined,
    outcomes: completions
      .filter(({ update }) => update.status !== 'delivered')
      .map(({ attempt, update }) =>
        outcomeUpdate.bind(tx.db, {
          id: attempt.notificationId,
          owner,
          status: update.status,
          nextAttemptAt: update.nextAttemptAt ? toDbTime(update.nextAttemptAt) : at,
          scheduleStep: update.scheduleStep ?? null,
          lastError: update.lastError?.slice(0, 1024) ?? null,
          at,
        }),
      ),
  };
}

/**
 * Records the attempts of several finished deliveries and their events' new states in one transaction, sent
 * as one batch (one round trip on MySQL). A state only changes while `owner` still holds the lease; `kept`
 * says, per completion, whether it did (the attempt is recorded either way). With `claim`, the same
 * transaction also leases due events to `owner` (the slots these completions free), one more round trip.
 */
export async function completeAttempts(
  db: Database,
  owner: string,
  completions: readonly Completion[],
  now: Date,
  claim?: FlushClaim,
): Promise<{ kept: boolean[]; claimed: ClaimedEvent[] }> {
  if (completions.length === 0) return { kept: [], claimed: [] };
  const at = toDbTime(now);
  return withBatchedTransaction(db, async (tx) => {
    const statements = completionStatements(tx, db.engine, owner, completions, at);
    const { results, claimed } =
      claim && claim.limit > 0
        ? await claimInTransaction(tx, db.engine, statements, owner, claim.limit, claim.leaseMs, now)
        : { results: await tx.commit(statements), claimed: [] };
    const kept = new Set((results.held.rows as Array<{ id: number | string }>).map((r) => Number(r.id)));
    return { kept: completions.map((c) => kept.has(c.attempt.notificationId)), claimed };
  });
}
