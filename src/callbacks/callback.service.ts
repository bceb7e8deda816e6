import type { GatewayName } from '../config.ts';
import { expectAffectedRows, withBatchedTransaction, type BatchedTransaction } from '../db/batched-transaction.ts';
import type { Database } from '../db/database.ts';
import { findOrderByNo, orderForUpdateSelect, transitionUpdate, type OrderRow } from '../orders/order.repository.ts';
import { orderEvent } from '../notifications/order-event.ts';
import { ERROR_STATUS } from '../shared/errors.ts';
import type { IpAllowlist } from '../shared/ip-allowlist.ts';
import { parseAmount } from '../shared/money.ts';
import { toDbTime, type Clock } from '../shared/time.ts';
import { isUniqueViolation } from '../system/system-config.repository.ts';
import type { CallbackOutcome, GatewayAdapter, PaymentResult, Rejection } from './gateways/gateway.ts';
import { nonceInsert } from './nonce.repository.ts';
import { insertPaymentLog, paymentLogInsert, type NewPaymentLog } from './payment-log.repository.ts';
import { decideTransition, type Decision } from './transition.ts';
import { withDeadlockRetry } from './deadlock-retry.ts';

export interface CallbackInput {
  gateway: GatewayAdapter;
  kind: 'notify' | 'return';
  params: Record<string, unknown>;
  rawBody?: Buffer;
  /** The request as received, stored verbatim in payment_logs.callback_data. */
  raw: string;
  headers: Record<string, string | string[] | undefined>;
  remoteIp: string | null;
  /** In-process calls (the sandbox) are not subject to the gateway's IP allowlist. */
  trusted?: boolean;
}

export interface CallbackServiceDeps {
  db: Database;
  clock: Clock;
  /** The IP allowlist in force for a gateway (console runtime settings over the environment); null = anyone. */
  allowlist: (gateway: GatewayName) => IpAllowlist | null;
  onEventQueued?: () => void;
  /** Counts every handled callback by gateway and verdict (/metrics). */
  recordCallback?: (gateway: GatewayName, verdict: CallbackOutcome['verdict']) => void;
}

class NonceReplayed extends Error {}
/** The gateway's own idempotency key was seen before: a repeat, answered as a duplicate. */
class EventRepeated extends Error {}

/** Gateways retry a notification for days; their event ids are remembered a good while longer. */
const EVENT_KEY_TTL_MS = 30 * 86_400_000;

type LogBase = Omit<NewPaymentLog, 'verdict' | 'orderNo'>;

function rejected(rejection: Pick<Rejection, 'code' | 'message' | 'verdict'>, orderNo?: string, order?: OrderRow): CallbackOutcome {
  return { verdict: rejection.verdict, status: ERROR_STATUS[rejection.code], code: rejection.code, message: rejection.message, orderNo, order };
}

/** Amount in minor units of the order's currency, or null when it cannot equal the order amount. */
function amountMinor(result: PaymentResult, order: OrderRow): number | null {
  if (result.currency !== undefined && result.currency.toUpperCase() !== order.currency) return null;
  if (result.amount.kind === 'minor') return result.amount.value;
  const parsed = parseAmount(result.amount.value, order.currency);
  return parsed.ok ? parsed.minor : null;
}

/**
 * Verification, then one transaction in two round trips on MySQL: [BEGIN, nonce, locked order read], then
 * after the checks and the A4 decision [transition (compare-and-swap on status and seq), outbox event,
 * payment log, COMMIT]. The order row stays locked from the read to the commit, so concurrent callbacks
 * for one order queue behind each other and each decides on the state the previous one left.
 */
export function createCallbackService({ db, clock, allowlist: allowlistOf, onEventQueued, recordCallback }: CallbackServiceDeps) {
  async function handle(input: CallbackInput): Promise<CallbackOutcome> {
    const outcome = await processCallback(input);
    recordCallback?.(input.gateway.name, outcome.verdict);
    return outcome;
  }

  async function processCallback(input: CallbackInput): Promise<CallbackOutcome> {
    const now = clock();
    const base: LogBase = { gateway: input.gateway.name, kind: input.kind, callbackData: input.raw, remoteIp: input.remoteIp, now: toDbTime(now) };
    const allowlist = allowlistOf(input.gateway.name);
    if (!input.trusted && allowlist && !allowlist.allows(input.remoteIp ?? undefined)) {
      const rejection = { verdict: 'forbidden', code: 'forbidden', message: `${input.remoteIp ?? 'This address'} may not call the ${input.gateway.name} callbacks` } as const;
      await insertPaymentLog(db.kysely, { ...base, orderNo: null, verdict: rejection.verdict, message: rejection.message });
      return rejected(rejection);
    }
    const verification = await input.gateway.verify({ params: input.params, rawBody: input.rawBody, headers: input.headers, now });
    if (verification.ok === false) {
      const r = verification.rejection;
      await insertPaymentLog(db.kysely, { ...base, orderNo: r.claimedOrderNo ?? null, verdict: r.verdict, message: r.message });
      return rejected(r, r.claimedOrderNo);
    }
    if (verification.ok === 'ignored') {
      const paymentData = verification.fields ? JSON.stringify(verification.fields) : null;
      await insertPaymentLog(db.kysely, { ...base, orderNo: verification.claimedOrderNo ?? null, verdict: 'ignored', message: verification.message, paymentData });
      return { verdict: 'ignored', status: 200, message: verification.message, orderNo: verification.claimedOrderNo };
    }
    const result = verification.result;
    const { nonce: _nonce, fields, ...normalized } = result;
    const logBase: LogBase = { ...base, transactionId: result.transactionId, currency: result.currency ?? null, status: result.outcome, paymentData: JSON.stringify(fields ?? normalized) };

    try {
      const { outcome, queued } = await withDeadlockRetry(() => withBatchedTransaction(db, (tx) => applyInTransaction(tx, logBase, result, now)));
      if (queued) onEventQueued?.();
      return outcome;
    } catch (err) {
      if (!(err instanceof NonceReplayed) && !(err instanceof EventRepeated)) throw err;
      // The verdicts checked before the nonce still take precedence: an unknown order stays `unknown_order`.
      const order = await findOrderByNo(db.kysely, result.orderNo);
      const checked = checkOrder(logBase, result, order);
      if (!checked.ok) {
        await insertPaymentLog(db.kysely, checked.entry);
        return checked.outcome;
      }
      if (err instanceof EventRepeated) {
        const message = 'This gateway event was processed before; nothing changed';
        await insertPaymentLog(db.kysely, { ...checked.log, orderNo: checked.order.order_no, verdict: 'duplicate', message });
        return { verdict: 'duplicate', status: 200, message, orderNo: checked.order.order_no, orderStatus: checked.order.status, order: checked.order };
      }
      const message = 'This nonce was seen before; the request is a replay';
      await insertPaymentLog(db.kysely, { ...checked.log, orderNo: checked.order.order_no, verdict: 'replayed', message });
      return rejected({ verdict: 'replayed', code: 'replayed', message }, checked.order.order_no, checked.order);
    }
  }

  type Checked = { ok: true; order: OrderRow; log: LogBase } | { ok: false; entry: NewPaymentLog; outcome: CallbackOutcome };

  /** The order must exist, and the amount and currency must equal it; both failures are recorded and flagged. */
  function checkOrder(logBase: LogBase, result: PaymentResult, order: OrderRow | undefined): Checked {
    if (!order) {
      const message = `Order ${result.orderNo} not found (recorded for operators)`;
      const entry: NewPaymentLog = { ...logBase, orderNo: result.orderNo, verdict: 'unknown_order', flagged: true, message };
      return { ok: false, entry, outcome: rejected({ verdict: 'unknown_order', code: 'not_found', message }, result.orderNo) };
    }
    const minor = amountMinor(result, order);
    if (minor === null || minor !== order.amount_minor) {
      const message = `Amount or currency does not match order ${order.order_no}; nothing changed`;
      const entry: NewPaymentLog = { ...logBase, amountMinor: minor, orderNo: order.order_no, verdict: 'amount_mismatch', flagged: true, message };
      return { ok: false, entry, outcome: rejected({ verdict: 'amount_mismatch', code: 'amount_mismatch', message }, order.order_no, order) };
    }
    return { ok: true, order, log: { ...logBase, amountMinor: minor, currency: order.currency } };
  }

  /** The payment-log entry and the answer for a decision that changes nothing (duplicate or refused transition). */
  function notApplied(log: LogBase, order: OrderRow, decision: Exclude<Decision, { kind: 'apply' }>): { entry: NewPaymentLog; outcome: CallbackOutcome } {
    const verdict = decision.kind === 'duplicate' ? 'duplicate' : 'invalid_state';
    const entry: NewPaymentLog = { ...log, orderNo: order.order_no, verdict, flagged: decision.kind === 'reject' && decision.flagged, message: decision.message };
    const outcome: CallbackOutcome =
      decision.kind === 'duplicate'
        ? { verdict: 'duplicate', status: 200, message: decision.message, orderNo: order.order_no, orderStatus: order.status, order }
        : rejected({ verdict: 'invalid_state', code: 'invalid_state', message: decision.message }, order.order_no, order);
    return { entry, outcome };
  }

  async function applyInTransaction(tx: BatchedTransaction, logBase: LogBase, result: PaymentResult, now: Date): Promise<{ outcome: CallbackOutcome; queued: boolean }> {
    // A replay guard: the gateway's nonce (a repeat is refused) or its event id (a repeat is a duplicate).
    const eventScope = `${logBase.gateway}:event`;
    const guard = result.nonce
      ? nonceInsert(tx.db, result.nonce.scope, result.nonce.value, result.nonce.expiresAt)
      : result.eventKey
        ? nonceInsert(tx.db, eventScope, result.eventKey.slice(0, 128), new Date(now.getTime() + EVENT_KEY_TTL_MS))
        : null;
    let read;
    try {
      read = await tx.send(...(guard ? [guard] : []), orderForUpdateSelect(tx.db, result.orderNo, db.engine));
    } catch (err) {
      // Only the guard insert can violate a unique key in this batch.
      if (guard && isUniqueViolation(err)) throw result.nonce ? new NonceReplayed() : new EventRepeated();
      throw err;
    }
    const checked = checkOrder(logBase, result, read.at(-1)?.rows[0] as OrderRow | undefined);
    if (!checked.ok) {
      // Nothing changes and the nonce is not spent: undo, then record the rejection on its own.
      await tx.rollback(paymentLogInsert(tx.db, checked.entry));
      return { outcome: checked.outcome, queued: false };
    }
    const { order, log } = checked;
    const decision = decideTransition(order, result.outcome, result.transactionId, result.unordered);
    if (decision.kind !== 'apply') {
      const { entry, outcome } = notApplied(log, order, decision);
      await tx.commit(paymentLogInsert(tx.db, entry));
      return { outcome, queued: false };
    }
    const change = { orderNo: order.order_no, fromStatus: order.status, expectedSeq: order.seq, to: decision.to, transactionId: result.transactionId, flagged: decision.flagged, now };
    const stamp = toDbTime(now);
    const updated: OrderRow = { ...order, status: decision.to, seq: order.seq + 1, transaction_id: result.transactionId, updated_at: stamp, paid_at: decision.to === 'paid' ? stamp : order.paid_at, flagged: decision.flagged ? 1 : order.flagged };
    const event = orderEvent(tx.db, updated, decision.to, updated.seq, now);
    const entry: NewPaymentLog = { ...log, orderNo: order.order_no, verdict: 'applied', flagged: decision.flagged, message: decision.message };
    // The row is locked since the read, so the compare-and-swap matches; if it ever did not, nothing after it commits.
    await tx.commit(expectAffectedRows(transitionUpdate(tx.db, change), 1), ...(event ? [event.insert] : []), paymentLogInsert(tx.db, entry));
    const outcome: CallbackOutcome = { verdict: 'applied', status: 200, message: decision.message, orderNo: updated.order_no, orderStatus: updated.status, order: updated };
    return { outcome, queued: event !== null };
  }

  /**
   * Verifies a return-URL request and shows the order as it stands, changing nothing (Alipay's return
   * carries no trade status). Rejections are logged like any callback.
   */
  async function inspect(input: CallbackInput): Promise<CallbackOutcome> {
    const now = clock();
    const verification = await input.gateway.verify({ params: input.params, rawBody: input.rawBody, headers: input.headers, now });
    const claimed = verification.ok === true ? verification.result.orderNo : verification.ok === 'ignored' ? verification.claimedOrderNo : undefined;
    if (verification.ok === false) {
      const r = verification.rejection;
      const base = { gateway: input.gateway.name, kind: input.kind, callbackData: input.raw, remoteIp: input.remoteIp, now: toDbTime(now) };
      await insertPaymentLog(db.kysely, { ...base, orderNo: r.claimedOrderNo ?? null, verdict: r.verdict, message: r.message });
      return rejected(r, r.claimedOrderNo);
    }
    const order = claimed ? await findOrderByNo(db.kysely, claimed) : undefined;
    if (!order) return rejected({ verdict: 'unknown_order', code: 'not_found', message: `Order ${claimed ?? '?'} not found` }, claimed);
    return { verdict: 'duplicate', status: 200, message: 'verified return', orderNo: order.order_no, orderStatus: order.status, order };
  }

  return { handle, inspect };
}

export type CallbackService = ReturnType<typeof createCallbackService>;
