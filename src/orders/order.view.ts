import { formatAmount } from '../shared/money.ts';
import { toIsoTime } from '../shared/time.ts';
import type { NotificationWithAttempts, PaymentLogSummary, RejectedCallbackSummary } from './order-history.repository.ts';
import type { OrderRow } from './order.repository.ts';
import type { RefundRow } from './refund.repository.ts';

/** The public order JSON (order JSON). */
export function toOrderJson(row: OrderRow) {
  return {
    order_no: row.order_no,
    amount: formatAmount(row.amount_minor, row.currency),
    currency: row.currency,
    status: row.status,
    payment_method: row.payment_method,
    subject: row.subject,
    transaction_id: row.transaction_id,
    callback_url: row.callback_url,
    notify_url: row.notify_url,
    metadata: row.metadata === null ? null : (JSON.parse(row.metadata) as Record<string, unknown>),
    paid_at: toIsoTime(row.paid_at),
    refunded_amount: formatAmount(row.refunded_minor, row.currency),
    expires_at: toIsoTime(row.expires_at),
    created_at: toIsoTime(row.created_at),
    updated_at: toIsoTime(row.updated_at),
  };
}

export type OrderJson = ReturnType<typeof toOrderJson>;

export function toPaymentJson(row: PaymentLogSummary) {
  return {
    id: row.id,
    gateway: row.gateway,
    kind: row.kind,
    source: row.kind === 'query' ? 'query' : 'callback',
    transaction_id: row.transaction_id,
    amount: row.amount_minor === null || row.currency === null ? null : formatAmount(row.amount_minor, row.currency),
    currency: row.currency,
    status: row.status,
    verdict: row.verdict,
    flagged: row.flagged === 1,
    message: row.message,
    remote_ip: row.remote_ip,
    created_at: toIsoTime(row.created_at),
  };
}

/** A request refused before verification: what it claimed to be, and the size and SHA-256 of what arrived. */
export function toRejectedCallbackJson(row: RejectedCallbackSummary) {
  return {
    id: row.id,
    gateway: row.gateway,
    kind: row.kind,
    verdict: row.verdict,
    message: row.message,
    remote_ip: row.remote_ip,
    callback_bytes: row.callback_bytes === null ? null : Number(row.callback_bytes),
    callback_sha256: row.callback_sha256,
    created_at: toIsoTime(row.created_at),
  };
}

export function toNotificationJson(row: NotificationWithAttempts) {
  return {
    event_id: row.event_id,
    type: row.type,
    seq: row.seq,
    url: row.url,
    status: row.status,
    attempt_count: row.attempts,
    next_attempt_at: toIsoTime(row.next_attempt_at),
    delivered_at: toIsoTime(row.delivered_at),
    last_error: row.last_error,
    created_at: toIsoTime(row.created_at),
    attempts: row.attemptRows.map((a) => ({
      attempt_no: a.attempt_no,
      started_at: toIsoTime(a.started_at),
      duration_ms: a.duration_ms,
      status_code: a.status_code,
      error: a.error,
      response_excerpt: a.response_excerpt,
      private_target: Number(a.private_target) === 1,
    })),
  };
}

/** The public refund JSON. */
export function toRefundJson(row: RefundRow) {
  return {
    refund_no: row.refund_no,
    order_no: row.order_no,
    amount: formatAmount(row.amount_minor, row.currency),
    currency: row.currency,
    status: row.status,
    reason: row.reason,
    gateway: row.gateway,
    gateway_refund_id: row.gateway_refund_id,
    failure_reason: row.failure_reason,
    created_at: toIsoTime(row.created_at),
    completed_at: toIsoTime(row.completed_at),
  };
}

export type RefundJson = ReturnType<typeof toRefundJson>;
