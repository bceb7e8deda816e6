import type { Response } from 'express';
import type { GatewayName } from '../../config.ts';
import type { OrderRow } from '../../orders/order.repository.ts';
import type { PaymentOutcome } from '../../orders/order-transitions.ts';
import type { ErrorCode } from '../../shared/errors.ts';

/** Verdicts written to payment_logs.verdict; operators filter on them. */
export type Verdict =
  | 'applied'
  | 'duplicate'
  | 'bad_signature'
  | 'replayed'
  | 'amount_mismatch'
  | 'unknown_order'
  | 'unknown_refund'
  | 'invalid_state'
  | 'forbidden'
  | 'malformed'
  | 'ignored';

/** The order rules own the outcomes; the adapters name them from here. */
export type { PaymentOutcome };

/** What a gateway said, once its signature checked out, in gateway-neutral terms. */
export interface PaymentResult {
  orderNo: string;
  transactionId: string;
  /** Decimal text in the order's currency (generic, Alipay) or integer minor units (WeChat, Stripe). */
  amount: { kind: 'decimal'; value: string } | { kind: 'minor'; value: number };
  /** Present when the gateway states it; must then equal the order's currency. */
  currency?: string;
  outcome: PaymentOutcome;
  /** Replay protection to record in the same transaction as the state change. */
  nonce?: { scope: string; value: string; expiresAt: Date };
  /** Gateway-level idempotency key (Alipay notify_id, WeChat notification id, Stripe event id): a repeat is a no-op. */
  eventKey?: string;
  /** The gateway does not promise event order (Stripe): a failure of the very transaction that paid the order is stale news. */
  unordered?: boolean;
  /** Only a pending order may change (the sandbox: it must never pay a closed or failed order, however late). */
  pendingOnly?: boolean;
  /** The raw verified fields (stored in payment_logs.payment_data); the normalized result when absent. */
  fields?: Record<string, unknown>;
}

/**
 * A refund notification, once its signature checked out. It names our refund by `refundNo` (out_request_no,
 * out_refund_no, metadata.refund_no) or, failing that, by the gateway's own `gatewayRefundId`.
 */
export interface RefundResult {
  orderNo?: string;
  refundNo?: string;
  gatewayRefundId?: string;
  /** The refund amount: decimal text in the order's currency, or integer minor units. */
  amount: PaymentResult['amount'];
  currency?: string;
  /** `pending`: the gateway is still working on it (recorded, nothing changes). */
  outcome: 'succeeded' | 'failed' | 'pending';
  /** Why it failed, in the gateway's words (refunds.failure_reason). */
  failureReason?: string;
  nonce?: PaymentResult['nonce'];
  eventKey?: string;
  fields?: Record<string, unknown>;
}

export interface Rejection {
  verdict: Exclude<Verdict, 'applied' | 'duplicate' | 'ignored'>;
  code: ErrorCode;
  message: string;
  /** The order number the request claimed, recorded for operators even when unverified. */
  claimedOrderNo?: string;
}

/** `ignored`: well signed, but about nothing we track (e.g. a Stripe event type we do not handle). */
export type Verification =
  | { ok: true; result: PaymentResult }
  | { ok: false; rejection: Rejection }
  /** A refund notification (several for one event when the gateway reports them together, e.g. Stripe charge.refunded). */
  | { ok: 'refund'; refunds: RefundResult[] }
  | { ok: 'ignored'; message: string; claimedOrderNo?: string; fields?: Record<string, unknown> };

/** A request to a callback route, as the adapter needs it. */
export interface CallbackRequest {
  params: Record<string, unknown>;
  rawBody?: Buffer;
  headers: Record<string, string | string[] | undefined>;
  now: Date;
}

/** How a callback ended, for the adapter to acknowledge in its gateway's own format. */
export interface CallbackOutcome {
  /**
   * `unavailable`: storage failed before anything was decided; `rate_limited`: a rejected request from an
   * address over CALLBACK_REJECT_RATE_PER_MINUTE. Neither is logged (only counted).
   */
  verdict: Verdict | 'unavailable' | 'rate_limited';
  /** HTTP status of our contract (200 for applied/duplicate). */
  status: number;
  code?: ErrorCode;
  message: string;
  orderNo?: string;
  orderStatus?: string;
  /** The order as it stands after processing, when the request was verified and the order exists. */
  order?: OrderRow;
}

export interface GatewayAdapter {
  readonly name: GatewayName;
  verify(request: CallbackRequest): Verification | Promise<Verification>;
  acknowledge(res: Response, outcome: CallbackOutcome): void;
}
