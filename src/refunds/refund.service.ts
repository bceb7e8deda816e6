import type { GatewayName } from '../config.ts';
import type { Database, Executor } from '../db/database.ts';
import { isUniqueViolation, withDbRetry } from '../db/db-errors.ts';
import { generateOrderNo } from '../orders/order-number.ts';
import { findOrderByNo } from '../orders/order.repository.ts';
import { toRefundJson } from '../orders/order.view.ts';
import { reserveRefund, type Reserved } from '../orders/refund-ledger.ts';
import { findRefundByNo, listRefundsOfOrder } from '../orders/refund.repository.ts';
import { gatewayOf } from '../reconcile/reconcile.service.ts';
import { AppError, NotFoundError } from '../shared/errors.ts';
import type { Clock } from '../shared/time.ts';
import type { RefundExecution } from './refund-execution.ts';
import type { CreateRefundInput } from './refund.schema.ts';

/** What makes each gateway refundable, for the not_refundable answer. */
const REFUND_SETTINGS: Record<GatewayName, string> = {
  generic: 'set GENERIC_REFUND_URL',
  sandbox: 'the sandbox is off (SANDBOX_ENABLED)',
  alipay: 'set ALIPAY_APP_ID, ALIPAY_PUBLIC_KEY and ALIPAY_PRIVATE_KEY',
  wechatpay: 'set WECHATPAY_MCH_ID, WECHATPAY_PLATFORM_KEYS, WECHATPAY_MCH_PRIVATE_KEY and WECHATPAY_MCH_SERIAL',
  stripe: 'set STRIPE_SECRET_KEY',
};

export interface RefundServiceDeps {
  db: Database;
  readDb: Database;
  clock: Clock;
  execution: RefundExecution;
  /** When the loop first asks about a refund whose request never reached the gateway (RECONCILE_AFTER). */
  firstCheckAfterMs: number;
  /** One gateway call's limit (the synchronous send waits at most this long). */
  timeoutMs: number;
}

/** Refunds: reserved in one transaction, then sent to the gateway; the answer, a notification or a query settles them. */
export function createRefundService(deps: RefundServiceDeps) {
  const { db, readDb, clock, execution } = deps;

  function refundableGateway(order: { order_no: string; payment_method: string | null }): string {
    const gateway = gatewayOf(order.payment_method);
    if (!execution.isRefundable(gateway))
      throw new AppError('not_refundable', `Order ${order.order_no} is paid through ${gateway}, which this service cannot refund: ${REFUND_SETTINGS[gateway]}`);
    return gateway;
  }

  async function reserve(orderNo: string, input: CreateRefundInput, requestedBy: string, alsoInTransaction?: (trx: Executor) => Promise<void>) {
    const now = clock();
    const request = { orderNo, refundNo: input.refund_no ?? `R${generateOrderNo(now)}`, amount: input.amount, reason: input.reason || null, requestedBy };
    const firstCheckAt = new Date(now.getTime() + deps.firstCheckAfterMs);
    for (let attempt = 0; ; attempt++) {
      try {
        return await withDbRetry(() =>
          db.kysely.transaction().execute(async (trx): Promise<Reserved> => {
            const reserved = await reserveRefund(trx, db.engine, request, refundableGateway, now, firstCheckAt);
            if (reserved.kind === 'created') await alsoInTransaction?.(trx);
            return reserved;
          }),
        );
      } catch (err) {
        // The same refund_no committed meanwhile (by a concurrent request for another order): decided again, against it.
        if (!isUniqueViolation(err) || attempt > 0) throw err;
        if (!input.refund_no) request.refundNo = `R${generateOrderNo(clock())}`;
      }
    }
  }

  /**
   * Creates a refund (or answers a replay of one) and, when new, sends it to the gateway at once, waiting at most
   * one gateway timeout: the answer is the refund as it then stands (pending until the gateway settles it).
   */
  async function create(orderNo: string, input: CreateRefundInput, requestedBy: string, alsoInTransaction?: (trx: Executor) => Promise<void>) {
    const reserved = await reserve(orderNo, input, requestedBy, alsoInTransaction);
    if (reserved.kind === 'existing') return { refund: toRefundJson(reserved.refund), created: false };
    const signal = AbortSignal.timeout(deps.timeoutMs * 2 + 1000);
    await execution.send(reserved.refund, reserved.order, 'request', signal);
    const current = await findRefundByNo(db.kysely, reserved.refund.refund_no);
    return { refund: toRefundJson(current ?? reserved.refund), created: true };
  }

  async function listOfOrder(orderNo: string) {
    const order = await findOrderByNo(readDb.kysely, orderNo);
    if (!order) throw new NotFoundError(`Order ${orderNo} not found`);
    return (await listRefundsOfOrder(readDb.kysely, orderNo)).map(toRefundJson);
  }

  async function get(refundNo: string) {
    const refund = await findRefundByNo(readDb.kysely, refundNo);
    if (!refund) throw new NotFoundError(`Refund ${refundNo} not found`);
    return toRefundJson(refund);
  }

  /** Whether orders paid through this payment method can be refunded here (the console shows its form only then). */
  const isRefundable = (paymentMethod: string | null) => execution.isRefundable(gatewayOf(paymentMethod));

  return { create, listOfOrder, get, isRefundable };
}

export type RefundService = ReturnType<typeof createRefundService>;
