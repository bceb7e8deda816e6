import { sql, type Selectable } from 'kysely';
import type { Database, Executor } from '../db/database.ts';
import type { ReconcileAttemptsTable } from '../db/schema.ts';
import { toDbTime } from '../shared/time.ts';

/** A pending order claimed for a look at its gateway. */
export interface DueOrder {
  order_no: string;
  amount_minor: number;
  currency: string;
  payment_method: string | null;
  status: string;
  created_at: string;
  expires_at: string | null;
  reconcile_step: number;
}

const DUE_COLUMNS = ['id', 'order_no', 'amount_minor', 'currency', 'payment_method', 'status', 'created_at', 'expires_at', 'reconcile_step'] as const;

/** Pending orders whose look is due, soonest first (the index (status, reconcile_at)). */
const dueOrders = (db: Executor, now: Date, limit: number) =>
  db.selectFrom('orders').where('status', '=', 'pending').where('reconcile_at', '<=', toDbTime(now)).orderBy('reconcile_at').limit(limit);

/**
 * Leases up to `limit` pending orders whose look is due to `owner`: the lease is stored as reconcile_at (a
 * crashed instance's orders are simply due again when it runs out), so one index serves both. MySQL: FOR
 * UPDATE SKIP LOCKED, so several instances never claim one order; SQLite: one writer, one atomic statement.
 */
export async function claimDueOrders(db: Database, owner: string, limit: number, leaseMs: number, now: Date): Promise<DueOrder[]> {
  const lease = { reconcile_at: toDbTime(new Date(now.getTime() + leaseMs)), reconcile_lease: owner };
  if (db.engine === 'sqlite') {
    // One UPDATE … RETURNING, a write from its start: another process's write is waited for (busy_timeout); read-then-write failed SQLITE_BUSY.
    const rows = await db.kysely
      .updateTable('orders')
      .set(lease)
      .where('id', 'in', dueOrders(db.kysely, now, limit).select('id'))
      .returning([...DUE_COLUMNS])
      .execute();
    return rows.map(({ id: _id, ...row }) => ({ ...row, amount_minor: Number(row.amount_minor) }));
  }
  return db.kysely.transaction().execute(async (trx) => {
    const rows = await dueOrders(trx, now, limit)
      .select([...DUE_COLUMNS])
      .forUpdate()
      .skipLocked()
      .execute();
    if (rows.length === 0) return [];
    await trx
      .updateTable('orders')
      .set(lease)
      .where(
        'id',
        'in',
        rows.map((r) => r.id),
      )
      .execute();
    return rows.map(({ id: _id, ...row }) => ({ ...row, amount_minor: Number(row.amount_minor) }));
  });
}

/** Records when to look next; only while the lease is still `owner`'s (else another instance owns the order now). */
export async function finishCheck(db: Executor, orderNo: string, owner: string, next: { at: Date | null; step: number }): Promise<boolean> {
  const result = await db
    .updateTable('orders')
    .set({
      // Paid or closed during the look: nothing left to do (null), whatever the schedule said.
      reconcile_at: sql<string | null>`case when status = 'pending' then ${next.at ? toDbTime(next.at) : null} else null end`,
      reconcile_step: next.step,
      reconcile_lease: null,
    })
    .where('order_no', '=', orderNo)
    .where('reconcile_lease', '=', owner)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/** On a stop that could not wait: the unfinished leases are due again at once (another instance asks). */
export async function releaseLeases(db: Executor, owner: string, now: Date): Promise<number> {
  const result = await db
    .updateTable('orders')
    .set({ reconcile_at: toDbTime(now), reconcile_lease: null })
    .where('reconcile_lease', '=', owner)
    .where('status', '=', 'pending')
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

export interface NewReconcileAttempt {
  orderNo: string;
  gateway: string;
  /** `request`: a refund sent when it was asked for (API or console). */
  trigger: 'schedule' | 'expiry' | 'manual' | 'request';
  /** `refund`/`refund_query`: a refund sent to or asked about at the gateway (the message names it). */
  action: 'query' | 'close' | 'refund' | 'refund_query';
  gatewayState: string | null;
  outcome: string;
  message: string | null;
  answer: string | null;
  durationMs: number;
  now: Date;
}

export async function insertReconcileAttempt(db: Executor, a: NewReconcileAttempt): Promise<void> {
  await db
    .insertInto('reconcile_attempts')
    .values({
      order_no: a.orderNo,
      gateway: a.gateway,
      trigger: a.trigger,
      action: a.action,
      gateway_state: a.gatewayState,
      outcome: a.outcome,
      message: a.message === null ? null : a.message.slice(0, 512),
      answer: a.answer,
      duration_ms: Math.round(a.durationMs),
      created_at: toDbTime(a.now),
    })
    .execute();
}

export type ReconcileAttemptRow = Selectable<ReconcileAttemptsTable>;

/** The order's looks at its gateway, newest first. */
export function listReconcileAttempts(db: Executor, orderNo: string, limit = 50): Promise<ReconcileAttemptRow[]> {
  return db.selectFrom('reconcile_attempts').selectAll().where('order_no', '=', orderNo).orderBy('id', 'desc').limit(limit).execute();
}

/** The latest gateway reference a verified callback brought for the order (Stripe: its PaymentIntent). */
export async function latestTransactionReference(db: Executor, orderNo: string, gateway: string): Promise<string | null> {
  const row = await db
    .selectFrom('payment_logs')
    .select('transaction_id')
    .where('order_no', '=', orderNo)
    .where('gateway', '=', gateway)
    .where('unverified', '=', 0)
    .where('transaction_id', 'is not', null)
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row?.transaction_id ?? null;
}
