import type { GatewayName } from '../config.ts';
import type { PaymentResult } from '../callbacks/gateways/gateway.ts';

/** An order as the reconciler asks a gateway about it. */
export interface QueryTarget {
  orderNo: string;
  amountMinor: number;
  /** ISO 4217, upper case. */
  currency: string;
  createdAt: Date;
  /** A gateway reference remembered from earlier callbacks (Stripe: the PaymentIntent id), when there is one. */
  reference?: string | null;
}

/** The verified fields of the answer, kept as evidence (payment_logs.payment_data and the order timeline). */
type Evidence = { fields: Record<string, unknown> };

/**
 * What a gateway said about an order, once its answer was authenticated.
 * `paid` carries what a callback would (checked against the order by the same code as a callback);
 * `mismatch` names an app id / merchant id that is not ours (flagged, nothing changes).
 */
export type QueryAnswer =
  | (Evidence & { state: 'paid'; transactionId: string; amount: PaymentResult['amount']; currency?: string; mismatch?: string })
  /** `pending`: not paid yet (it may still be); `failed`: an attempt failed, the order may still be paid; `closed`: it can no longer be paid; `not_found`: the gateway has no such payment. */
  | (Evidence & { state: 'pending' | 'failed' | 'closed' | 'not_found'; gatewayStatus: string });

/** Why a call to a gateway told us nothing: the order never changes because of it, and it is asked again later. */
export type GatewayCallErrorKind = 'timeout' | 'network' | 'http_status' | 'bad_signature' | 'malformed' | 'refused' | 'not_configured';

export class GatewayCallError extends Error {
  constructor(
    readonly kind: GatewayCallErrorKind,
    message: string,
    /** The start of the answer (≤ 2 KiB) when there was one, for the timeline. */
    readonly excerpt?: string,
  ) {
    super(message);
    this.name = 'GatewayCallError';
  }
}

/** A gateway's query (and, where it has one, close) API. Every method throws GatewayCallError on any failure. */
export interface GatewayClient {
  readonly gateway: GatewayName;
  query(target: QueryTarget, signal: AbortSignal): Promise<QueryAnswer>;
  /**
   * Closes the payment at the gateway so that it can no longer be paid; resolves also when the gateway has
   * no such payment (nothing can be paid then). Throws GatewayCallError `refused` when the gateway will not
   * close it (e.g. it was paid meanwhile): the reconciler then asks again.
   */
  close?(target: QueryTarget, signal: AbortSignal): Promise<Evidence>;
  /** Present when the gateway's refund API is configured. */
  refunds?: RefundClient;
}

/** A refund as a gateway is told about it (or asked about it). */
export interface RefundTarget {
  orderNo: string;
  /** Ours: the gateway's out_request_no / out_refund_no / Idempotency-Key, so a repeated request refunds once. */
  refundNo: string;
  amountMinor: number;
  /** ISO 4217, upper case (the order's). */
  currency: string;
  /** The whole order amount (WeChat Pay's amount.total). */
  orderAmountMinor: number;
  /** The gateway's transaction id that paid the order (Alipay trade_no, WeChat transaction_id, Stripe PaymentIntent id). */
  transactionId: string | null;
  reason: string | null;
  /** The gateway's own id of this refund, once an answer or notification named it (Stripe re_…, WeChat refund_id). */
  gatewayRefundId: string | null;
  createdAt: Date;
}

/**
 * What a gateway said about a refund, once its answer was authenticated. `succeeded` may state the amount
 * (minor units) and currency, checked against ours before anything settles; `failed` is definitive: the money
 * did not move (a refusal, a closed refund); `not_found`: the gateway never received the request.
 * Anything that leaves the outcome unknown (timeout, 5xx, unreadable answer) is thrown as GatewayCallError.
 */
export type RefundAnswer = Evidence &
  (
    | { state: 'succeeded'; gatewayRefundId: string | null; amountMinor?: number; currency?: string }
    | { state: 'pending'; gatewayRefundId: string | null; gatewayStatus: string }
    | { state: 'failed'; gatewayRefundId: string | null; reason: string }
    | { state: 'not_found'; gatewayStatus: string }
  );

/** A gateway's refund API. Both methods throw GatewayCallError when the outcome is unknown (the refund then stays pending). */
export interface RefundClient {
  /** Asks the gateway to refund; idempotent at the gateway by refundNo, so it may be sent again after an unknown outcome. */
  refund(target: RefundTarget, signal: AbortSignal): Promise<RefundAnswer>;
  queryRefund(target: RefundTarget, signal: AbortSignal): Promise<RefundAnswer>;
}

/** The first 2 KiB of an answer, for the timeline. */
export function excerptOf(text: string): string {
  return text.length > 2048 ? `${text.slice(0, 2048)}…` : text;
}
