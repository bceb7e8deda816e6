import { randomBytes } from 'node:crypto';
import type { CallbackService } from '../callbacks/callback.service.ts';
import type { GatewayAdapter } from '../callbacks/gateways/gateway.ts';
import { findOrderByNo, type OrderRow } from '../orders/order.repository.ts';
import type { CreateOrderInput } from '../orders/order.schema.ts';
import type { OrderService } from '../orders/order.service.ts';
import type { Database } from '../db/database.ts';
import { InvalidStateError, NotFoundError } from '../shared/errors.ts';
import { formatAmount } from '../shared/money.ts';
import { computeSign } from '../shared/signing.ts';
import type { Clock } from '../shared/time.ts';

export interface SandboxDeps {
  db: Database;
  orders: OrderService;
  callbacks: CallbackService;
  /** The generic signature scheme, logged as gateway `sandbox`. */
  gateway: GatewayAdapter;
  gatewaySecret: string;
  clock: Clock;
}

/** The built-in sandbox gateway (DESIGN A8): it signs real A5 notifications with GATEWAY_SECRET. */
export function createSandboxService({ db, orders, callbacks, gateway, gatewaySecret, clock }: SandboxDeps) {
  function signedParams(order: OrderRow, transactionId: string, status: 'success' | 'failed'): Record<string, string> {
    const params: Record<string, string> = {
      order_no: order.order_no,
      transaction_id: transactionId,
      amount: formatAmount(order.amount_minor, order.currency),
      currency: order.currency,
      status,
      timestamp: String(Math.floor(clock().getTime() / 1000)),
      nonce: randomBytes(12).toString('hex'),
      sign_type: 'MD5',
    };
    return { ...params, sign: computeSign(params, gatewaySecret, 'MD5') };
  }

  /**
   * Only a pending order can be paid or failed at the checkout: the sandbox signs its notification as the
   * gateway would, so anything else (a closed order becoming paid) would be a forged late payment.
   */
  const isPayable = (order: OrderRow) => order.status === 'pending';

  /** Only orders created for the sandbox: it must never become a way to mark a real order paid. */
  async function findOrder(orderNo: string): Promise<OrderRow> {
    const order = await findOrderByNo(db.kysely, orderNo);
    if (!order || order.payment_method !== 'sandbox') throw new NotFoundError(`Sandbox order ${orderNo} not found`);
    return order;
  }

  async function createDemoOrder(input: CreateOrderInput) {
    return (await orders.create({ ...input, payment_method: 'sandbox' })).order;
  }

  /**
   * Sends the gateway's signed notification through the same service call as POST /notify, then
   * returns freshly signed parameters for the browser's trip through /callback.
   */
  async function pay(orderNo: string, action: 'pay' | 'fail', remoteIp: string | null): Promise<URLSearchParams> {
    const order = await findOrder(orderNo);
    if (!isPayable(order)) throw new InvalidStateError(`Sandbox order ${orderNo} is ${order.status}, not pending: it can no longer be paid or failed`);
    const status = action === 'pay' ? 'success' : 'failed';
    const transactionId = `SBX${clock().getTime()}${randomBytes(4).toString('hex').toUpperCase()}`;
    const params = signedParams(order, transactionId, status);
    await callbacks.handle({ gateway, kind: 'notify', params, raw: new URLSearchParams(params).toString(), headers: {}, remoteIp, trusted: true });
    return new URLSearchParams(signedParams(order, transactionId, status));
  }

  return { findOrder, isPayable, createDemoOrder, pay };
}

export type SandboxService = ReturnType<typeof createSandboxService>;
