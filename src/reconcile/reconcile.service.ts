import type { CallbackService } from '../callbacks/callback.service.ts';
import type { GatewayName } from '../config.ts';
import type { Database } from '../db/database.ts';
import type { OrderService } from '../orders/order.service.ts';
import { findOrderByNo } from '../orders/order.repository.ts';
import { toOrderJson } from '../orders/order.view.ts';
import { AppError, InvalidStateError, NotFoundError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { fromDbTime, type Clock } from '../shared/time.ts';
import { excerptOf, GatewayCallError, type GatewayClient, type QueryAnswer, type QueryTarget } from './gateway-client.ts';
import { flagForeignAnswer } from './foreign-answer.ts';
import { insertReconcileAttempt, latestTransactionReference, type DueOrder, type NewReconcileAttempt } from './reconcile.repository.ts';

export type Trigger = NewReconcileAttempt['trigger'];

/** What one look at the gateway came to (`outcome` is also the metric's label). */
export interface CheckResult {
  outcome: 'recovered' | 'already_paid' | 'unchanged' | 'closed' | 'expired' | 'mismatch' | 'error' | 'not_queryable';
  gatewayState: string | null;
  message: string;
  /** Leave the order alone from now on (a mismatch waits for an operator). */
  stop?: boolean;
}

export interface ReconcileServiceDeps {
  db: Database;
  clock: Clock;
  logger: Logger;
  /** The gateways whose query API is configured. */
  clients: Partial<Record<GatewayName, GatewayClient>>;
  callbacks: Pick<CallbackService, 'applyQueried'>;
  orders: Pick<OrderService, 'close'>;
  recordReconcile?: (gateway: string, outcome: string) => void;
}

/** What makes each gateway askable, for the not_queryable answer. */
const QUERY_SETTINGS: Record<GatewayName, string> = {
  generic: 'set GENERIC_QUERY_URL',
  sandbox: 'the sandbox is off (SANDBOX_ENABLED)',
  alipay: 'set ALIPAY_APP_ID, ALIPAY_PUBLIC_KEY and ALIPAY_PRIVATE_KEY',
  wechatpay: 'set WECHATPAY_MCH_ID, WECHATPAY_PLATFORM_KEYS, WECHATPAY_MCH_PRIVATE_KEY and WECHATPAY_MCH_SERIAL',
  stripe: 'set STRIPE_SECRET_KEY',
};

/** An order without a payment method is paid through the generic gateway (the heritage default). */
export const gatewayOf = (paymentMethod: string | null): GatewayName => (paymentMethod ?? 'generic') as GatewayName;

/** Asks gateways about orders and applies what they say, through the callbacks' own decision and transaction. */
export function createReconcileService(deps: ReconcileServiceDeps) {
  const { db, clock, logger, clients, callbacks, orders } = deps;

  const isQueryable = (paymentMethod: string | null) => clients[gatewayOf(paymentMethod)] !== undefined;

  async function targetOf(order: DueOrder, gateway: GatewayName): Promise<QueryTarget> {
    const reference = gateway === 'stripe' ? await latestTransactionReference(db.kysely, order.order_no, 'stripe') : null;
    return { orderNo: order.order_no, amountMinor: order.amount_minor, currency: order.currency, createdAt: fromDbTime(order.created_at), reference };
  }

  /** Closes the order here (pending or failed only), with its order.closed event; the attempt is recorded with it. */
  async function closeHere(order: DueOrder, outcome: 'closed' | 'expired', attempt: NewReconcileAttempt): Promise<CheckResult> {
    try {
      await orders.close(order.order_no, (trx) => insertReconcileAttempt(trx, { ...attempt, outcome }));
      return { outcome, gatewayState: attempt.gatewayState, message: attempt.message ?? outcome };
    } catch (err) {
      if (!(err instanceof InvalidStateError)) throw err;
      // Paid (or closed) meanwhile, by a callback: it won; nothing to close.
      const message = `not closed: ${err.message}`;
      await insertReconcileAttempt(db.kysely, { ...attempt, outcome: 'unchanged', message });
      return { outcome: 'unchanged', gatewayState: attempt.gatewayState, message };
    }
  }

  /** A paid answer goes through the callback's transaction (same decision, log row `query`, outbox event). */
  async function applyPaid(order: DueOrder, gateway: GatewayName, answer: Extract<QueryAnswer, { state: 'paid' }>) {
    const evidence = excerptOf(JSON.stringify(answer.fields));
    if (answer.mismatch) {
      await flagForeignAnswer(db.kysely, { gateway, orderNo: order.order_no, answer, evidence, now: clock() });
      return { outcome: 'mismatch', message: answer.mismatch, stop: true } as const;
    }
    const result = {
      orderNo: order.order_no,
      transactionId: answer.transactionId,
      amount: answer.amount,
      currency: answer.currency,
      outcome: 'paid' as const,
      fields: answer.fields,
    };
    const applied = await callbacks.applyQueried(gateway, result, evidence);
    if (applied.verdict === 'applied') return { outcome: 'recovered', message: applied.message } as const;
    if (applied.verdict === 'duplicate') return { outcome: 'already_paid', message: applied.message } as const;
    // amount_mismatch, or paid by another transaction: flagged in the inbox by the callback path; an operator decides.
    return { outcome: 'mismatch', message: applied.message, stop: true } as const;
  }

  async function ask(client: GatewayClient, target: QueryTarget, signal: AbortSignal) {
    const started = performance.now();
    try {
      return { answer: await client.query(target, signal), ms: performance.now() - started };
    } catch (err) {
      if (err instanceof GatewayCallError) return { error: err, ms: performance.now() - started };
      throw err;
    }
  }

  /**
   * One look at the gateway: a paid answer is applied; a closed one closes the order; at the expiry an unpaid
   * order is closed at the gateway first (where it can be), then here. A failure changes nothing.
   */
  async function check(order: DueOrder, trigger: Trigger, signal: AbortSignal): Promise<CheckResult> {
    const gateway = gatewayOf(order.payment_method);
    const client = clients[gateway];
    const now = clock();
    const base: NewReconcileAttempt = {
      orderNo: order.order_no,
      gateway,
      trigger,
      action: 'query',
      gatewayState: null,
      outcome: '',
      message: null,
      answer: null,
      durationMs: 0,
      now,
    };
    const expired = trigger === 'expiry';
    if (!client) {
      if (!expired) return { outcome: 'not_queryable', gatewayState: null, message: `${gateway} has no query API configured` };
      return finish(
        gateway,
        await closeHere(order, 'expired', { ...base, action: 'close', message: 'expired; this gateway cannot be asked, so it is closed here' }),
      );
    }
    const target = await targetOf(order, gateway);
    const asked = await ask(client, target, signal);
    if (asked.error) {
      const message = `${asked.error.kind}: ${asked.error.message}`;
      await insertReconcileAttempt(db.kysely, { ...base, outcome: 'error', message, answer: asked.error.excerpt ?? null, durationMs: asked.ms });
      return finish(gateway, { outcome: 'error', gatewayState: null, message });
    }
    const answer = asked.answer;
    const seen = { ...base, gatewayState: answer.state, answer: excerptOf(JSON.stringify(answer.fields)), durationMs: asked.ms };
    if (answer.state === 'paid') {
      const applied = await applyPaid(order, gateway, answer);
      await insertReconcileAttempt(db.kysely, { ...seen, outcome: applied.outcome, message: applied.message });
      return finish(gateway, { ...applied, gatewayState: 'paid' });
    }
    if (answer.state === 'closed' && order.status !== 'closed')
      return finish(gateway, await closeHere(order, 'closed', { ...seen, message: 'the gateway says the payment is closed' }));
    if (!expired) {
      await insertReconcileAttempt(db.kysely, { ...seen, outcome: 'unchanged', message: `not paid (${answer.gatewayStatus})` });
      return finish(gateway, { outcome: 'unchanged', gatewayState: answer.state, message: `not paid (${answer.gatewayStatus})` });
    }
    return finish(gateway, await expire(order, client, target, seen, signal));
  }

  /** Expired and unpaid: closed at the gateway (so it can no longer be paid), then here; paid meanwhile → applied. */
  async function expire(order: DueOrder, client: GatewayClient, target: QueryTarget, seen: NewReconcileAttempt, signal: AbortSignal): Promise<CheckResult> {
    await insertReconcileAttempt(db.kysely, { ...seen, outcome: 'unchanged', message: 'expired and not paid: closing it at the gateway' });
    if (client.close) {
      const started = performance.now();
      try {
        const closed = await client.close(target, signal);
        seen = { ...seen, action: 'close', answer: excerptOf(JSON.stringify(closed.fields)), durationMs: performance.now() - started, now: clock() };
      } catch (err) {
        if (!(err instanceof GatewayCallError)) throw err;
        const message = `close ${err.kind}: ${err.message}`;
        await insertReconcileAttempt(db.kysely, {
          ...seen,
          action: 'close',
          outcome: 'error',
          message,
          answer: err.excerpt ?? null,
          durationMs: performance.now() - started,
          now: clock(),
        });
        // Refused: most likely paid meanwhile; the next look (soon) asks again and applies it.
        return { outcome: 'error', gatewayState: seen.gatewayState, message };
      }
    }
    return closeHere(order, 'expired', {
      ...seen,
      action: 'close',
      message: client.close ? 'expired: closed at the gateway and here' : 'expired: closed here (the gateway has no close API)',
    });
  }

  function finish(gateway: string, result: CheckResult): CheckResult {
    deps.recordReconcile?.(gateway, result.outcome);
    if (result.outcome === 'recovered')
      logger.warn({ gateway, outcome: result.outcome }, 'payment recovered by asking the gateway: its callback never arrived');
    return result;
  }

  /** POST /api/orders/:order_no/sync and the console button: ask now, apply what the gateway says (no expiry here). */
  async function syncNow(order: DueOrder): Promise<CheckResult> {
    if (!isQueryable(order.payment_method))
      throw new AppError(
        'not_queryable',
        `Order ${order.order_no} is paid through the ${gatewayOf(order.payment_method)} gateway, which this service cannot ask: ${QUERY_SETTINGS[gatewayOf(order.payment_method)]}`,
      );
    const result = await check(order, 'manual', AbortSignal.timeout(60_000));
    if (result.outcome === 'error') throw new AppError('gateway_error', `The gateway could not be asked: ${result.message}`);
    return result;
  }

  /** The order as it stands after asking, with what the gateway said. */
  async function syncOrder(orderNo: string) {
    const row = await findOrderByNo(db.kysely, orderNo);
    if (!row) throw new NotFoundError(`Order ${orderNo} not found`);
    const result = await syncNow({ ...row, amount_minor: Number(row.amount_minor) });
    const after = (await findOrderByNo(db.kysely, orderNo)) ?? row;
    return {
      ...toOrderJson(after),
      reconcile: { gateway: gatewayOf(row.payment_method), gateway_state: result.gatewayState, outcome: result.outcome, message: result.message },
    };
  }

  return { check, syncNow, syncOrder, isQueryable, queryableGateways: () => Object.keys(clients) as GatewayName[] };
}

export type ReconcileService = ReturnType<typeof createReconcileService>;
