import { insertPaymentLog } from '../callbacks/payment-log.repository.ts';
import type { GatewayName } from '../config.ts';
import type { Database } from '../db/database.ts';
import { withDbRetry } from '../db/db-errors.ts';
import { settleRefund, type Settled } from '../orders/refund-ledger.ts';
import { findRefundByNo, recordRefundAnswer, type RefundRow } from '../orders/refund.repository.ts';
import type { OrderRow } from '../orders/order.repository.ts';
import { excerptOf, GatewayCallError, type RefundAnswer, type RefundClient, type RefundTarget } from '../reconcile/gateway-client.ts';
import { insertReconcileAttempt, type NewReconcileAttempt } from '../reconcile/reconcile.repository.ts';
import type { Logger } from '../shared/logger.ts';
import { fromDbTime, toDbTime, type Clock } from '../shared/time.ts';

export interface RefundExecutionDeps {
  db: Database;
  clock: Clock;
  logger: Logger;
  /** The gateways whose refund API is configured. */
  clients: Partial<Record<GatewayName, RefundClient>>;
  onEventQueued?: () => void;
  /** Counts every refund call by gateway and outcome (/metrics). */
  recordRefundCall?: (gateway: string, action: string, outcome: string) => void;
}

/** What one call to the gateway came to: `unknown` leaves the refund pending (asked about later), never failed. */
export type CallOutcome = 'succeeded' | 'failed' | 'pending' | 'not_found' | 'unknown' | 'mismatch' | 'already' | 'contradicts';

/**
 * Sends refunds to their gateways and asks about pending ones; a definitive answer settles the refund through the
 * ledger (once, whoever — answer, notification or query — comes first). Every call is recorded on the order's timeline.
 */
export function createRefundExecution(deps: RefundExecutionDeps) {
  const { db, clock, logger, clients } = deps;

  const targetOf = (refund: RefundRow, order: Pick<OrderRow, 'amount_minor' | 'transaction_id'>): RefundTarget => ({
    orderNo: refund.order_no,
    refundNo: refund.refund_no,
    amountMinor: refund.amount_minor,
    currency: refund.currency,
    orderAmountMinor: order.amount_minor,
    transactionId: order.transaction_id,
    reason: refund.reason,
    gatewayRefundId: refund.gateway_refund_id,
    createdAt: fromDbTime(refund.created_at),
  });

  async function settle(refund: RefundRow, status: 'succeeded' | 'failed', answer: RefundAnswer, reason: string | null): Promise<Settled> {
    const gatewayRefundId = 'gatewayRefundId' in answer ? answer.gatewayRefundId : null;
    const evidence = excerptOf(JSON.stringify(answer.fields));
    const settled = await withDbRetry(() =>
      db.kysely
        .transaction()
        .execute((tx) =>
          settleRefund(tx, db.engine, refund.order_no, refund.refund_no, { status, gatewayRefundId, failureReason: reason, answer: evidence }, clock()),
        ),
    );
    if (settled.kind === 'settled' && settled.event) deps.onEventQueued?.();
    return settled;
  }

  /** A succeeded answer that disagrees with the refund (amount, currency): flagged in the inbox, the refund left pending. */
  async function flagMismatch(refund: RefundRow, answer: Extract<RefundAnswer, { state: 'succeeded' }>, evidence: string): Promise<void> {
    await insertPaymentLog(db.kysely, {
      gateway: refund.gateway,
      kind: 'query',
      orderNo: refund.order_no,
      transactionId: answer.gatewayRefundId ?? refund.refund_no,
      amountMinor: answer.amountMinor ?? null,
      currency: answer.currency ?? null,
      status: 'refund_succeeded',
      verdict: 'amount_mismatch',
      flagged: true,
      message: `Refund ${refund.refund_no}: the gateway reports a refund that differs from ours (amount or currency); nothing changed`,
      paymentData: evidence,
      callbackData: evidence,
      remoteIp: null,
      now: toDbTime(clock()),
    });
  }

  /**
   * A refund settled before this answer (by a notification) stays as it is: `already` when the answer agrees; when it
   * contradicts (failed after succeeded, or the reverse), money may have moved unseen, so it is flagged for an operator.
   */
  async function settledAs(settled: Settled, outcome: 'succeeded' | 'failed', evidence: string): Promise<CallOutcome> {
    if (settled.kind === 'settled') return outcome;
    if (settled.refund.status === outcome) return 'already';
    const { refund } = settled;
    await insertPaymentLog(db.kysely, {
      gateway: refund.gateway,
      kind: 'query',
      orderNo: refund.order_no,
      transactionId: refund.gateway_refund_id ?? refund.refund_no,
      amountMinor: refund.amount_minor,
      currency: refund.currency,
      status: `refund_${outcome}`,
      verdict: 'invalid_state',
      flagged: true,
      message: `Refund ${refund.refund_no} is already ${refund.status}; the gateway now answers ${outcome} (flagged)`,
      paymentData: evidence,
      callbackData: evidence,
      remoteIp: null,
      now: toDbTime(clock()),
    });
    return 'contradicts';
  }

  /** Applies an authenticated answer; returns what it came to. */
  async function apply(refund: RefundRow, answer: RefundAnswer): Promise<CallOutcome> {
    const evidence = excerptOf(JSON.stringify(answer.fields));
    switch (answer.state) {
      case 'succeeded': {
        const wrongAmount = answer.amountMinor !== undefined && answer.amountMinor !== refund.amount_minor;
        const wrongCurrency = answer.currency !== undefined && answer.currency.toUpperCase() !== refund.currency;
        if (wrongAmount || wrongCurrency) {
          await flagMismatch(refund, answer, evidence);
          return 'mismatch';
        }
        return settledAs(await settle(refund, 'succeeded', answer, null), 'succeeded', evidence);
      }
      case 'failed':
        return settledAs(await settle(refund, 'failed', answer, answer.reason), 'failed', evidence);
      case 'pending':
        await recordRefundAnswer(db.kysely, refund.refund_no, answer.gatewayRefundId, evidence, clock());
        return 'pending';
      case 'not_found':
        return 'not_found';
    }
  }

  /** One call with its timeline row; a GatewayCallError is an unknown outcome, any other error is storage's (thrown). */
  async function call(
    refund: RefundRow,
    order: Pick<OrderRow, 'amount_minor' | 'transaction_id'>,
    action: 'refund' | 'refund_query',
    trigger: NewReconcileAttempt['trigger'],
    signal: AbortSignal,
  ): Promise<CallOutcome> {
    const client = clients[refund.gateway as GatewayName];
    const started = performance.now();
    let outcome: CallOutcome;
    let gatewayState: string | null = null;
    let answerText: string | null;
    let message: string;
    try {
      if (!client) throw new GatewayCallError('not_configured', `the ${refund.gateway} refund API is not configured`);
      const target = targetOf(refund, order);
      const answer = action === 'refund' ? await client.refund(target, signal) : await client.queryRefund(target, signal);
      answerText = excerptOf(JSON.stringify(answer.fields));
      gatewayState = 'gatewayStatus' in answer ? answer.gatewayStatus : answer.state;
      outcome = await apply(refund, answer);
      message = `refund ${refund.refund_no}: ${outcome}${answer.state === 'failed' ? ` (${answer.reason})` : ''}`;
    } catch (err) {
      if (!(err instanceof GatewayCallError)) throw err;
      outcome = 'unknown';
      answerText = err.excerpt ?? null;
      message = `refund ${refund.refund_no}: outcome unknown, stays pending (${err.kind}: ${err.message})`;
      logger.warn({ refundNo: refund.refund_no, gateway: refund.gateway, kind: err.kind }, `refund ${action}: ${err.message}`);
    }
    deps.recordRefundCall?.(refund.gateway, action, outcome);
    const durationMs = performance.now() - started;
    await insertReconcileAttempt(db.kysely, {
      orderNo: refund.order_no,
      gateway: refund.gateway,
      trigger,
      action,
      gatewayState,
      outcome: `refund_${outcome}`,
      message,
      answer: answerText,
      durationMs,
      now: clock(),
    }).catch((err: unknown) => logger.warn({ err, refundNo: refund.refund_no }, 'refund: the call could not be recorded on the timeline'));
    return outcome;
  }

  /** Sends a refund that was just reserved (trigger `request`) or never reached its gateway. */
  const send = (refund: RefundRow, order: Pick<OrderRow, 'amount_minor' | 'transaction_id'>, trigger: NewReconcileAttempt['trigger'], signal: AbortSignal) =>
    call(refund, order, 'refund', trigger, signal);

  /** Asks about a pending refund; when the gateway never received it, sends it again (idempotent by refund_no there). */
  async function check(
    refund: RefundRow,
    order: Pick<OrderRow, 'amount_minor' | 'transaction_id'>,
    trigger: NewReconcileAttempt['trigger'],
    signal: AbortSignal,
  ) {
    const outcome = await call(refund, order, 'refund_query', trigger, signal);
    if (outcome !== 'not_found') return outcome;
    const current = await findRefundByNo(db.kysely, refund.refund_no);
    return current?.status === 'pending' ? send(current, order, trigger, signal) : outcome;
  }

  const isRefundable = (gateway: string) => clients[gateway as GatewayName] !== undefined;

  return { send, check, isRefundable };
}

export type RefundExecution = ReturnType<typeof createRefundExecution>;
