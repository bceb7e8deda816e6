import { insertPaymentLog } from '../callbacks/payment-log.repository.ts';
import type { Executor } from '../db/database.ts';
import { toDbTime } from '../shared/time.ts';
import type { QueryAnswer } from './gateway-client.ts';

/** A paid answer naming another app or merchant id: flagged in the inbox for an operator, the order unchanged. */
export async function flagForeignAnswer(
  db: Executor,
  a: { gateway: string; orderNo: string; answer: Extract<QueryAnswer, { state: 'paid' }>; evidence: string; now: Date },
): Promise<void> {
  await insertPaymentLog(db, {
    gateway: a.gateway,
    kind: 'query',
    orderNo: a.orderNo,
    transactionId: a.answer.transactionId.slice(0, 128),
    currency: a.answer.currency ?? null,
    status: 'paid',
    verdict: 'forbidden',
    flagged: true,
    message: `the gateway's answer is not about this merchant: ${a.answer.mismatch ?? '?'}; nothing changed`,
    paymentData: a.evidence,
    callbackData: a.evidence,
    remoteIp: null,
    now: toDbTime(a.now),
  });
}
