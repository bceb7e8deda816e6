import type { GatewayName } from '../config.ts';
import type { Database, Executor } from '../db/database.ts';
import { findOrderByNo, findOrderForUpdate, transitionOrder, type OrderRow } from '../orders/order.repository.ts';
import { recordOrderEvent } from '../notifications/order-event.ts';
import { ERROR_STATUS } from '../shared/errors.ts';
import type { IpAllowlist } from '../shared/ip-allowlist.ts';
import { parseAmount } from '../shared/money.ts';
import { toDbTime, type Clock } from '../shared/time.ts';
import { isUniqueViolation } from '../system/system-config.repository.ts';
import type { CallbackOutcome, GatewayAdapter, PaymentResult, Rejection } from './gateways/gateway.ts';
import { insertNonce } from './nonce.repository.ts';
import { insertPaymentLog, type NewPaymentLog } from './payment-log.repository.ts';
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
  allowlists: Partial<Record<GatewayName, IpAllowlist>>;
  onEventQueued?: () => void;
}

class NonceReplayed extends Error {}

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

/** Verification → order lookup → amount check → one transaction: nonce, transition, outbox event, payment log. */
export function createCallbackService({ db, clock, allowlists, onEventQueued }: CallbackServiceDeps) {
  async function handle(input: CallbackInput): Promise<CallbackOutcome> {
    const now = clock();
    const base: LogBase = { gateway: input.gateway.name, kind: input.kind, callbackData: input.raw, remoteIp: input.remoteIp, now: toDbTime(now) };
    const allowlist = allowlists[input.gateway.name];
    if (!input.trusted && allowlist && !allowlist.allows(input.remoteIp ?? undefined)) {
      const rejection = { verdict: 'forbidden', code: 'forbidden', message: `${input.remoteIp ?? 'This address'} may not call the ${input.gateway.name} callbacks` } as const;
      await insertPaymentLog(db.kysely, { ...base, orderNo: null, verdict: rejection.verdict, message: rejection.message });
      return rejected(rejection);
    }
    const verification = await input.gateway.verify({ params: input.params, rawBody: input.rawBody, headers: input.headers, now });
    if (!verification.ok) {
      const r = verification.rejection;
      await insertPaymentLog(db.kysely, { ...base, orderNo: r.claimedOrderNo ?? null, verdict: r.verdict, message: r.message });
      return rejected(r, r.claimedOrderNo);
    }
    const result = verification.result;
    const { nonce: _nonce, ...verifiedFields } = result;
    const logBase: LogBase = { ...base, transactionId: result.transactionId, currency: result.currency ?? null, status: result.outcome, paymentData: JSON.stringify(verifiedFields) };

    const order = await findOrderByNo(db.kysely, result.orderNo);
    if (!order) {
      const message = `Order ${result.orderNo} not found (recorded for operators)`;
      await insertPaymentLog(db.kysely, { ...logBase, orderNo: result.orderNo, verdict: 'unknown_order', flagged: true, message });
      return rejected({ verdict: 'unknown_order', code: 'not_found', message }, result.orderNo);
    }
    const minor = amountMinor(result, order);
    if (minor === null || minor !== order.amount_minor) {
      const message = `Amount or currency does not match order ${order.order_no}; nothing changed`;
      await insertPaymentLog(db.kysely, { ...logBase, amountMinor: minor, orderNo: order.order_no, verdict: 'amount_mismatch', flagged: true, message });
      return rejected({ verdict: 'amount_mismatch', code: 'amount_mismatch', message }, order.order_no, order);
    }
    const log: LogBase = { ...logBase, amountMinor: minor, currency: order.currency };

    const first = decideTransition(order, result.outcome, result.transactionId);
    if (first.kind !== 'apply' && !result.nonce) return finish(db.kysely, log, order, first);

    try {
      const { outcome, queued } = await withDeadlockRetry(() => db.kysely.transaction().execute((trx) => applyInTransaction(trx, log, order, result, now)));
      if (queued) onEventQueued?.();
      return outcome;
    } catch (err) {
      if (!(err instanceof NonceReplayed)) throw err;
      const message = 'This nonce was seen before; the request is a replay';
      await insertPaymentLog(db.kysely, { ...log, orderNo: order.order_no, verdict: 'replayed', message });
      return rejected({ verdict: 'replayed', code: 'replayed', message }, order.order_no, order);
    }
  }

  /** Records a non-applying decision (duplicate or refused transition) and answers for it. */
  async function finish(executor: Executor, log: LogBase, order: OrderRow, decision: Exclude<Decision, { kind: 'apply' }>): Promise<CallbackOutcome> {
    const verdict = decision.kind === 'duplicate' ? 'duplicate' : 'invalid_state';
    await insertPaymentLog(executor, { ...log, orderNo: order.order_no, verdict, flagged: decision.kind === 'reject' && decision.flagged, message: decision.message });
    if (decision.kind === 'duplicate') return { verdict: 'duplicate', status: 200, message: decision.message, orderNo: order.order_no, orderStatus: order.status, order };
    return rejected({ verdict: 'invalid_state', code: 'invalid_state', message: decision.message }, order.order_no, order);
  }

  async function applyInTransaction(trx: Executor, log: LogBase, preRead: OrderRow, result: PaymentResult, now: Date) {
    if (result.nonce) {
      try {
        await insertNonce(trx, result.nonce.scope, result.nonce.value, result.nonce.expiresAt);
      } catch (err) {
        if (isUniqueViolation(err)) throw new NonceReplayed();
        throw err;
      }
    }
    let current = preRead;
    for (let attempt = 0; attempt < 3; attempt++) {
      const decision = decideTransition(current, result.outcome, result.transactionId);
      if (decision.kind !== 'apply') return { outcome: await finish(trx, log, current, decision), queued: false };
      const change = { orderNo: current.order_no, fromStatus: current.status, expectedSeq: current.seq, to: decision.to, transactionId: result.transactionId, flagged: decision.flagged, now };
      if (await transitionOrder(trx, change)) {
        const stamp = toDbTime(now);
        const updated: OrderRow = { ...current, status: decision.to, seq: current.seq + 1, transaction_id: result.transactionId, updated_at: stamp, paid_at: decision.to === 'paid' ? stamp : current.paid_at, flagged: decision.flagged ? 1 : current.flagged };
        const event = await recordOrderEvent(trx, updated, decision.to, updated.seq, now);
        await insertPaymentLog(trx, { ...log, orderNo: current.order_no, verdict: 'applied', flagged: decision.flagged, message: decision.message });
        const outcome: CallbackOutcome = { verdict: 'applied', status: 200, message: decision.message, orderNo: updated.order_no, orderStatus: updated.status, order: updated };
        return { outcome, queued: event !== null };
      }
      // Someone else changed the order since we read it: read it again, locked, and decide afresh.
      current = (await findOrderForUpdate(trx, current.order_no, db.engine)) ?? current;
    }
    throw Object.assign(new Error('order kept changing concurrently'), { code: 'ER_LOCK_DEADLOCK' });
  }

  return { handle };
}

export type CallbackService = ReturnType<typeof createCallbackService>;
