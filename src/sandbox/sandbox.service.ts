import { randomBytes } from 'node:crypto';
import type { CallbackInput, CallbackService } from '../callbacks/callback.service.ts';
import type { GatewayAdapter } from '../callbacks/gateways/gateway.ts';
import { findOrderByNo, type OrderRow } from '../orders/order.repository.ts';
import type { CreateOrderInput } from '../orders/order.schema.ts';
import type { OrderService } from '../orders/order.service.ts';
import type { Database } from '../db/database.ts';
import { InvalidStateError, NotFoundError } from '../shared/errors.ts';
import { formatAmount } from '../shared/money.ts';
import { computeSign } from '../shared/signing.ts';
import type { Clock } from '../shared/time.ts';
import type { SandboxGateway } from './sandbox-gateway.ts';

export interface SandboxDeps {
  db: Database;
  orders: OrderService;
  callbacks: CallbackService;
  /** The generic signature scheme, logged as gateway `sandbox`. */
  gateway: GatewayAdapter;
  gatewaySecret: string;
  clock: Clock;
  /** The sandbox gateway's own books (what it answers queries from). */
  books: SandboxGateway;
  /** RECONCILE_AFTER: told to the shopper who chose to lose the notification. */
  reconcileAfterMs: number;
}

/**
 * An order the sandbox will not pay: made for another gateway, or not there at all. Both get this same answer,
 * so the checkout tells nobody which order numbers exist.
 */
export class NotSandboxOrderError extends NotFoundError {
  readonly orderNo: string;
  constructor(orderNo: string) {
    super(`Order ${orderNo} cannot be paid in the sandbox: the sandbox pays only orders created for it (payment method "sandbox")`);
    this.orderNo = orderNo;
  }
}

/** The built-in sandbox gateway: it signs real A5 notifications with GATEWAY_SECRET. */
export function createSandboxService({ db, orders, callbacks, gateway, gatewaySecret, clock, books, reconcileAfterMs }: SandboxDeps) {
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
    if (!order || order.payment_method !== 'sandbox') throw new NotSandboxOrderError(orderNo.slice(0, 64));
    return order;
  }

  async function createDemoOrder(input: CreateOrderInput) {
    return (await orders.create({ ...input, payment_method: 'sandbox' })).order;
  }

  /**
   * Sends the gateway's signed notification through the same service call as POST /notify, then
   * returns freshly signed parameters for the browser's trip through /callback.
   */
  async function pay(orderNo: string, action: 'pay' | 'fail' | 'lose', remoteIp: string | null): Promise<URLSearchParams | null> {
    const order = await findOrder(orderNo);
    if (!isPayable(order)) throw new InvalidStateError(`Sandbox order ${orderNo} is ${order.status}, not pending: it can no longer be paid or failed`);
    const status = action === 'fail' ? 'failed' : 'success';
    const transactionId = `SBX${clock().getTime()}${randomBytes(4).toString('hex').toUpperCase()}`;
    // The gateway's books first, as at a real gateway: the money has moved before anyone is told.
    const payment = { orderNo: order.order_no, transactionId, status, amountMinor: order.amount_minor, currency: order.currency } as const;
    await books.record(db.kysely, { ...payment, notificationLost: action === 'lose' });
    // Paid, but the notification never leaves: only asking the gateway (the reconciler) finds the payment.
    if (action === 'lose') return null;
    const params = signedParams(order, transactionId, status);
    await callbacks.handle({ gateway, kind: 'notify', params, raw: new URLSearchParams(params).toString(), headers: {}, remoteIp, trusted: true });
    return new URLSearchParams(signedParams(order, transactionId, status));
  }

  /**
   * The shopper's browser back from the checkout (`GET /callback/sandbox`), verified and logged as the sandbox
   * gateway. Sandbox orders only: the path must not label another gateway's payment "sandbox".
   */
  async function returnTrip(input: Omit<CallbackInput, 'gateway'>) {
    await findOrder(typeof input.params.order_no === 'string' ? input.params.order_no : '');
    return callbacks.handle({ ...input, gateway });
  }

  return { findOrder, isPayable, createDemoOrder, pay, returnTrip, gateway, books, reconcileAfterSeconds: Math.max(1, Math.ceil(reconcileAfterMs / 1000)) };
}

export type SandboxService = ReturnType<typeof createSandboxService>;
