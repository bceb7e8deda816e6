import type { GatewayName } from '../config.ts';
import type { Database, Executor } from '../db/database.ts';
import { isUniqueViolation, withDbRetry } from '../db/db-errors.ts';
import { findOrderByNo, type OrderRow } from '../orders/order.repository.ts';
import { settleRefund } from '../orders/refund-ledger.ts';
import { findRefundByGatewayId, findRefundByNo, type RefundRow } from '../orders/refund.repository.ts';
import { ERROR_STATUS } from '../shared/errors.ts';
import { parseAmount } from '../shared/money.ts';
import { toDbTime } from '../shared/time.ts';
import { replayGuardOf, type LogBase } from './callback-plan.ts';
import type { CallbackOutcome, RefundResult } from './gateways/gateway.ts';
import { insertNonce } from './nonce.repository.ts';
import { insertPaymentLog, type NewPaymentLog } from './payment-log.repository.ts';

/** The generic gateway and the sandbox sign with the same key and protocol: either may report the other's refunds. */
const sameFamily = (a: string, b: string) => a === b || (['generic', 'sandbox'].includes(a) && ['generic', 'sandbox'].includes(b));

class GuardSeen extends Error {}

/** A refund notification's own decision: what it names, whether it agrees with it, and what it settles. */
async function applyOne(tx: Executor, db: Database, gateway: GatewayName, base: LogBase, result: RefundResult, now: Date) {
  let refund: RefundRow | undefined;
  if (result.refundNo) refund = await findRefundByNo(tx, result.refundNo);
  else if (result.gatewayRefundId) refund = await findRefundByGatewayId(tx, gateway, result.gatewayRefundId);
  const named = result.refundNo ?? result.gatewayRefundId ?? '?';
  const entry = (orderNo: string | null, verdict: NewPaymentLog['verdict'], message: string, flagged = false): NewPaymentLog => ({
    ...base,
    orderNo,
    transactionId: result.gatewayRefundId ?? result.refundNo ?? null,
    status: `refund_${result.outcome}`,
    verdict,
    flagged,
    message,
  });
  if (!refund || !sameFamily(refund.gateway, gateway) || (result.orderNo !== undefined && result.orderNo !== refund.order_no)) {
    const message = `Refund ${named} matches no refund of this service${result.orderNo ? ` for order ${result.orderNo}` : ''} (recorded for operators)`;
    return { entry: entry(result.orderNo ?? refund?.order_no ?? null, 'unknown_refund', message, true), code: 'not_found' as const, message };
  }
  const minor = result.amount.kind === 'minor' ? result.amount.value : parseAmount(result.amount.value, refund.currency);
  const amountMinor = typeof minor === 'number' ? minor : minor.ok ? minor.minor : null;
  const sameCurrency = result.currency === undefined || result.currency.toUpperCase() === refund.currency;
  const log = { amountMinor, currency: refund.currency };
  if (amountMinor !== refund.amount_minor || !sameCurrency) {
    const message = `Refund ${refund.refund_no}: the notified amount or currency differs from the refund; nothing changed`;
    return { entry: { ...entry(refund.order_no, 'amount_mismatch', message, true), ...log }, code: 'amount_mismatch' as const, message };
  }
  if (result.outcome === 'pending') {
    const message = `Refund ${refund.refund_no} is still being processed by the gateway`;
    return { entry: { ...entry(refund.order_no, 'ignored', message), ...log } };
  }
  const answer = JSON.stringify(result.fields ?? {}).slice(0, 65_000);
  const settlement = { status: result.outcome, gatewayRefundId: result.gatewayRefundId ?? null, failureReason: result.failureReason ?? null, answer };
  const settled = await settleRefund(tx, db.engine, refund.order_no, refund.refund_no, settlement, now);
  if (settled.kind === 'settled') {
    const message = `Refund ${refund.refund_no} ${result.outcome}`;
    return { entry: { ...entry(refund.order_no, 'applied', message), ...log }, order: settled.order, queued: settled.event !== null };
  }
  if (settled.refund.status === result.outcome) {
    return { entry: { ...entry(refund.order_no, 'duplicate', `Refund ${refund.refund_no} was already ${result.outcome}`), ...log }, order: settled.order };
  }
  // The gateway contradicts a settled refund (e.g. succeeded after it failed): money may have moved; an operator must look.
  const message = `Refund ${refund.refund_no} is already ${settled.refund.status}; the gateway now says ${result.outcome} (flagged)`;
  return { entry: { ...entry(refund.order_no, 'invalid_state', message, true), ...log }, order: settled.order, code: 'invalid_state' as const, message };
}

/**
 * Applies a verified refund notification: the replay guard, each refund it reports settled once (with the
 * payment-log rows and merchant events) in one transaction, after which the gateway may be acknowledged.
 */
export async function applyRefundNotification(
  db: Database,
  input: { gateway: GatewayName; base: LogBase; refunds: RefundResult[]; now: Date },
): Promise<{ outcome: CallbackOutcome; queued: boolean }> {
  const { gateway, base, refunds, now } = input;
  const first = refunds[0];
  // One guard per notification: the refunds it reports settle together (Stripe's charge.refunded lists several).
  const guard = first ? replayGuardOf({ logBase: base, result: first, now }) : null;
  try {
    return await withDbRetry(() =>
      db.kysely.transaction().execute(async (tx) => {
        if (guard) {
          try {
            await insertNonce(tx, guard.scope, guard.nonce, guard.expiresAt);
          } catch (err) {
            if (isUniqueViolation(err)) throw new GuardSeen();
            throw err;
          }
        }
        const results = [];
        for (const refund of refunds)
          results.push(await applyOne(tx, db, gateway, { ...base, paymentData: JSON.stringify(refund.fields ?? refund) }, refund, now));
        for (const r of results) await insertPaymentLog(tx, r.entry);
        const failed = results.find((r) => r.code);
        const last = results.at(-1);
        const queued = results.some((r) => r.queued);
        const order: OrderRow | undefined = results.findLast((r) => r.order)?.order;
        if (failed?.code)
          return {
            outcome: {
              verdict: failed.entry.verdict as CallbackOutcome['verdict'],
              status: ERROR_STATUS[failed.code],
              code: failed.code,
              message: failed.message,
              orderNo: failed.entry.orderNo ?? undefined,
              order,
            },
            queued,
          };
        const verdict = (results.some((r) => r.entry.verdict === 'applied') ? 'applied' : (last?.entry.verdict ?? 'ignored')) as CallbackOutcome['verdict'];
        return {
          outcome: {
            verdict,
            status: 200,
            message: last?.entry.message ?? 'no refund in the notification',
            orderNo: order?.order_no,
            orderStatus: order?.status,
            order,
          },
          queued,
        };
      }),
    );
  } catch (err) {
    if (!(err instanceof GuardSeen)) throw err;
    // Seen before: a replay (nonce) or the gateway repeating an event (its id); nothing changes, the repeat is recorded.
    const orderNo = first?.orderNo ?? (first?.refundNo ? (await findRefundByNo(db.kysely, first.refundNo))?.order_no : undefined);
    const order = orderNo ? await findOrderByNo(db.kysely, orderNo) : undefined;
    const replay = first?.nonce !== undefined;
    const message = replay ? 'This nonce was seen before; the request is a replay' : 'This gateway event was processed before; nothing changed';
    await insertPaymentLog(db.kysely, {
      ...base,
      orderNo: order?.order_no ?? null,
      verdict: replay ? 'replayed' : 'duplicate',
      message,
      status: `refund_${first?.outcome}`,
      now: toDbTime(now),
    });
    const outcome: CallbackOutcome = replay
      ? { verdict: 'replayed', status: 409, code: 'replayed', message, orderNo: order?.order_no, order }
      : { verdict: 'duplicate', status: 200, message, orderNo: order?.order_no, orderStatus: order?.status, order };
    return { outcome, queued: false };
  }
}
