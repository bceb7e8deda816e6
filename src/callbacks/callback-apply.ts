import { expectAffectedRows } from '../db/fast-path/batch-statements.ts';
import type { BatchedTransaction } from '../db/fast-path/batched-transaction.ts';
import type { Engine } from '../db/database.ts';
import { committedNothing, isUniqueViolation } from '../db/db-errors.ts';
import { eventInsert, eventsInsert } from '../orders/order-event.repository.ts';
import { orderForUpdateSelect, ordersForUpdateSelect, transitionsUpdate, transitionUpdate, type OrderRow } from '../orders/order.repository.ts';
import { planCallback, replayGuardOf, type Plan, type VerifiedCallback } from './callback-plan.ts';
import type { CallbackOutcome } from './gateways/gateway.ts';
import { nonceInsert, noncesInsert } from './nonce.repository.ts';
import { paymentLogInsert, paymentLogsInsert } from './payment-log.repository.ts';

/** The nonce was seen before: the request is a replay. */
export class NonceReplayed extends Error {}
/** The gateway's own idempotency key was seen before: a repeat, answered as a duplicate. */
export class EventRepeated extends Error {}

export interface Applied {
  outcome: CallbackOutcome;
  /** An outbox event was committed (the delivery loop may be woken). */
  queued: boolean;
}

const appliedOf = (plan: Plan): Applied => ({ outcome: plan.outcome, queued: plan.kind === 'apply' && plan.event !== null });

/**
 * One callback in two round trips on MySQL: [BEGIN, replay guard, locked order read], then after the
 * decision [transition, outbox event, payment log, COMMIT]. The order row stays locked from the read to
 * the commit, so concurrent callbacks for one order queue behind each other.
 */
export async function applyOne(tx: BatchedTransaction, engine: Engine, item: VerifiedCallback): Promise<Applied> {
  const guard = replayGuardOf(item);
  let read;
  try {
    read = await tx.send({
      guard: guard ? nonceInsert(tx.db, guard.scope, guard.nonce, guard.expiresAt) : undefined,
      order: orderForUpdateSelect(tx.db, item.result.orderNo, engine),
    });
  } catch (err) {
    // Only the guard insert can violate a unique key in this batch.
    if (guard && isUniqueViolation(err)) throw item.result.nonce ? new NonceReplayed() : new EventRepeated();
    throw err;
  }
  const plan = planCallback(item, read.order.rows[0] as OrderRow | undefined);
  if (plan.kind === 'refuse') {
    // Nothing changes and the guard is not spent: undo, then record the rejection on its own.
    await tx.rollback(paymentLogInsert(tx.db, plan.entry));
  } else if (plan.kind === 'record') {
    await tx.commit({ log: paymentLogInsert(tx.db, plan.entry) });
  } else {
    // The row is locked since the read, so the compare-and-swap matches; if it ever did not, nothing after it commits.
    await tx.commit({
      transition: expectAffectedRows(transitionUpdate(tx.db, plan.change), 1),
      event: plan.event ? eventInsert(tx.db, plan.event.row) : undefined,
      log: paymentLogInsert(tx.db, plan.entry),
    });
  }
  return appliedOf(plan);
}

/**
 * Several callbacks for distinct orders in one transaction, two round trips on MySQL: [BEGIN, locked read
 * of every order], then [the replay guards of those that passed the checks, one update with every
 * transition, the outbox events, the payment logs, COMMIT]. The outcome of each equals what {@link applyOne} decides; a repeated
 * guard (or any other statement error) fails the whole group, which then runs one by one.
 */
export async function applyGroup(tx: BatchedTransaction, engine: Engine, items: readonly VerifiedCallback[]): Promise<Applied[]> {
  const { orders } = await tx.send({
    orders: ordersForUpdateSelect(
      tx.db,
      items.map((i) => i.result.orderNo),
      engine,
    ),
  });
  const byOrderNo = new Map((orders.rows as OrderRow[]).map((row) => [row.order_no, row]));
  // MySQL compares VARCHARs ignoring trailing spaces (PAD SPACE), so the lone read would find such an order too.
  const keyOf = (orderNo: string) => (engine === 'mysql' ? orderNo.replace(/ +$/, '') : orderNo);
  const plans = items.map((item) => planCallback(item, byOrderNo.get(keyOf(item.result.orderNo))));
  const guards = [];
  for (let i = 0; i < items.length; i++) {
    const guard = plans[i]!.kind === 'refuse' ? null : replayGuardOf(items[i]!);
    if (guard) guards.push(guard);
  }
  const changes = [];
  const events = [];
  for (const plan of plans) {
    if (plan.kind !== 'apply') continue;
    changes.push(plan.change);
    if (plan.event) events.push(plan.event.row);
  }
  await tx.commit({
    guards: guards.length > 0 ? noncesInsert(tx.db, guards) : undefined,
    // All the transitions in one statement, which must change every one of those rows (locked since the read).
    transitions: changes.length > 0 ? expectAffectedRows(transitionsUpdate(tx.db, changes), changes.length) : undefined,
    events: events.length > 0 ? eventsInsert(tx.db, events) : undefined,
    logs: paymentLogsInsert(
      tx.db,
      plans.map((p) => p.entry),
    ),
  });
  return plans.map(appliedOf);
}

/**
 * Whether a failed group may run again one callback at a time: the server refused a statement (duplicate
 * guard, deadlock, a changed row), so nothing of the group committed. A lost or timed-out connection may
 * have committed, so its error is everyone's answer instead (503, and the gateway retries).
 */
export function groupMayRunAlone(engine: Engine, err: unknown): boolean {
  return committedNothing(engine, err);
}
