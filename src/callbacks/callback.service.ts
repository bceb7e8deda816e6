import type { GatewayName } from '../config.ts';
import { withBatchedTransaction } from '../db/fast-path/batched-transaction.ts';
import type { Database } from '../db/database.ts';
import { isDatabaseUnreachable, withDbRetry } from '../db/db-errors.ts';
import { findOrderByNo } from '../orders/order.repository.ts';
import type { IpAllowlist } from '../shared/ip-allowlist.ts';
import { toDbTime, type Clock } from '../shared/time.ts';
import { applyGroup, applyOne, EventRepeated, groupMayRunAlone, NonceReplayed, type Applied } from './callback-apply.ts';
import { checkOrder, rejected, type LogBase, type VerifiedCallback } from './callback-plan.ts';
import type { CallbackOutcome, GatewayAdapter, PaymentResult, Rejection } from './gateways/gateway.ts';
import { createGroupCommit, QueueFull } from '../db/fast-path/group-commit.ts';
import { GROUP_LIST_ROWS } from '../db/fast-path/query-template.ts';
import { claimedOrderNo } from './params.ts';
import { claimedAlipayOrderNo } from './gateways/alipay-signature.ts';
import { insertPaymentLog } from './payment-log.repository.ts';
import type { RejectLimiter } from './reject-limiter.ts';
import { rejectedEvidence } from './rejected-evidence.ts';
import { applyRefundNotification } from './refund-notification.ts';

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
  /** Rejected callbacks per source address (CALLBACK_REJECT_RATE_PER_MINUTE); none = every rejection is stored. */
  rejectLimiter?: RejectLimiter | null;
  /** Counts rejected callbacks dropped by the limiter (/metrics). */
  recordRejectDropped?: (gateway: GatewayName) => void;
  /** Told the size of each callback transaction (/metrics), or that a refused group runs one by one. */
  recordCallbackGroup?: (size: number, retried: boolean) => void;
  /** Callback transactions in flight at once (a share of the connection pool); more callbacks wait and commit together. */
  maxRunningTransactions?: number;
}

/** Large enough to amortise a commit over many callbacks, small enough to keep each transaction short. */
export const MAX_GROUP = 32;
// The fast path's contract (docs/architecture.md): a group's list statements stay within what their templates keep compiled.
if (MAX_GROUP > GROUP_LIST_ROWS) throw new Error(`MAX_GROUP (${MAX_GROUP}) exceeds the list templates' GROUP_LIST_ROWS (${GROUP_LIST_ROWS})`);
/** Callbacks may wait for this many full rounds of transactions; beyond that they are answered 503 at once (memory and latency stay bounded). */
const QUEUED_ROUNDS = 4;

/**
 * Verification, then the transaction: each verified callback joins the group commit, which runs it alone
 * (callback-apply.ts applyOne) or, while earlier transactions hold the database, together with others for
 * other orders (applyGroup). Rejections before the transaction are logged on their own.
 */
export function createCallbackService(deps: CallbackServiceDeps) {
  const { db, clock, allowlist: allowlistOf, onEventQueued, recordCallback, recordCallbackGroup, maxRunningTransactions = 2 } = deps;
  const group = createGroupCommit<VerifiedCallback, Applied>({
    maxGroup: MAX_GROUP,
    maxRunning: maxRunningTransactions,
    maxQueued: MAX_GROUP * maxRunningTransactions * QUEUED_ROUNDS,
    key: (item) => item.result.orderNo,
    runOne: (item) => withDbRetry(() => withBatchedTransaction(db, (tx) => applyOne(tx, db.engine, item))),
    runGroup: (items) => withBatchedTransaction(db, (tx) => applyGroup(tx, db.engine, items)),
    retryAlone: (err) => groupMayRunAlone(db.engine, err),
    failQueued: isDatabaseUnreachable,
    onGroup: recordCallbackGroup,
  });

  async function handle(input: CallbackInput): Promise<CallbackOutcome> {
    const outcome = await processCallback(input);
    recordCallback?.(input.gateway.name, outcome.verdict);
    return outcome;
  }

  /**
   * A request refused before verification may be anyone's: it keeps an excerpt of its body (with size and
   * hash), and past the source address's budget it is answered 429 and not stored at all.
   */
  async function refuse(
    input: CallbackInput,
    rejection: Pick<Rejection, 'verdict' | 'code' | 'message' | 'claimedOrderNo'>,
    now: Date,
  ): Promise<CallbackOutcome> {
    const orderNo = rejection.claimedOrderNo;
    if (!input.trusted && input.remoteIp && (await deps.rejectLimiter?.exceeded(input.remoteIp))) {
      deps.recordRejectDropped?.(input.gateway.name);
      const message = 'Too many rejected callbacks from this address; this one was not recorded';
      return { verdict: 'rate_limited', status: 429, code: 'rate_limited', message, orderNo };
    }
    await insertPaymentLog(db.kysely, {
      gateway: input.gateway.name,
      kind: input.kind,
      remoteIp: input.remoteIp,
      now: toDbTime(now),
      orderNo: orderNo ?? null,
      verdict: rejection.verdict,
      message: rejection.message,
      ...rejectedEvidence(input.raw, input.rawBody),
    });
    return rejected(rejection, orderNo);
  }

  async function processCallback(input: CallbackInput): Promise<CallbackOutcome> {
    const now = clock();
    const allowlist = allowlistOf(input.gateway.name);
    if (!input.trusted && allowlist && !allowlist.allows(input.remoteIp ?? undefined)) {
      // Filed under the order it names (unverified, listed apart), so the order's page shows the attempt.
      const claimed = claimedOrderNo(input.params) ?? claimedAlipayOrderNo(input.params);
      return refuse(
        input,
        {
          verdict: 'forbidden',
          code: 'forbidden',
          message: `${input.remoteIp ?? 'This address'} may not call the ${input.gateway.name} callbacks`,
          claimedOrderNo: claimed,
        },
        now,
      );
    }
    // Verification first, so a correctly signed callback is never refused for the rejections around it.
    const verification = await input.gateway.verify({ params: input.params, rawBody: input.rawBody, headers: input.headers, now });
    if (verification.ok === false) return refuse(input, verification.rejection, now);
    const base: LogBase = { gateway: input.gateway.name, kind: input.kind, callbackData: input.raw, remoteIp: input.remoteIp, now: toDbTime(now) };
    if (verification.ok === 'ignored') {
      const paymentData = verification.fields ? JSON.stringify(verification.fields) : null;
      await insertPaymentLog(db.kysely, {
        ...base,
        orderNo: verification.claimedOrderNo ?? null,
        verdict: 'ignored',
        message: verification.message,
        paymentData,
      });
      return { verdict: 'ignored', status: 200, message: verification.message, orderNo: verification.claimedOrderNo };
    }
    if (verification.ok === 'refund') {
      const { outcome, queued } = await applyRefundNotification(db, { gateway: input.gateway.name, base, refunds: verification.refunds, now });
      if (queued) onEventQueued?.();
      return outcome;
    }
    const result = verification.result;
    const { nonce: _nonce, fields, ...normalized } = result;
    const logBase: LogBase = {
      ...base,
      transactionId: result.transactionId,
      currency: result.currency ?? null,
      status: result.outcome,
      paymentData: JSON.stringify(fields ?? normalized),
    };

    try {
      const { outcome, queued } = await group.submit({ logBase, result, now });
      if (queued) onEventQueued?.();
      return outcome;
    } catch (err) {
      if (err instanceof QueueFull) return OVERLOADED;
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

  /**
   * Verifies a return-URL request and shows the order as it stands, changing nothing (Alipay's return
   * carries no trade status). Rejections are logged like any callback.
   */
  async function inspect(input: CallbackInput): Promise<CallbackOutcome> {
    const now = clock();
    const verification = await input.gateway.verify({ params: input.params, rawBody: input.rawBody, headers: input.headers, now });
    const claimed =
      verification.ok === true
        ? verification.result.orderNo
        : verification.ok === 'ignored'
          ? verification.claimedOrderNo
          : verification.ok === 'refund'
            ? verification.refunds[0]?.orderNo
            : undefined;
    if (verification.ok === false) return refuse(input, verification.rejection, now);
    const order = claimed ? await findOrderByNo(db.kysely, claimed) : undefined;
    if (!order) return rejected({ verdict: 'unknown_order', code: 'not_found', message: `Order ${claimed ?? '?'} not found` }, claimed);
    return { verdict: 'duplicate', status: 200, message: 'verified return', orderNo: order.order_no, orderStatus: order.status, order };
  }

  /**
   * A payment result the reconciler obtained by asking the gateway (its answer already authenticated): the same
   * decision and transaction as a callback, so a callback and a query of one payment apply once (its transaction id).
   */
  async function applyQueried(gateway: GatewayName, result: PaymentResult, answer: string): Promise<CallbackOutcome> {
    const now = clock();
    const { fields, ...normalized } = result;
    const logBase: LogBase = {
      gateway,
      kind: 'query',
      callbackData: answer,
      remoteIp: null,
      now: toDbTime(now),
      transactionId: result.transactionId,
      currency: result.currency ?? null,
      status: result.outcome,
      paymentData: JSON.stringify(fields ?? normalized),
    };
    const { outcome, queued } = await group.submit({ logBase, result, now });
    if (queued) onEventQueued?.();
    return outcome;
  }

  return { handle, inspect, applyQueried, queuedCallbacks: group.queued };
}

/** Nothing was decided or stored: the gateway retries later, as after a storage failure. */
const OVERLOADED: CallbackOutcome = Object.freeze({
  verdict: 'unavailable',
  status: 503,
  code: 'unavailable',
  message: 'The service is busy; the request was not acknowledged and is safe to retry.',
});

export type CallbackService = ReturnType<typeof createCallbackService>;
