import type { Insertable } from 'kysely';
import type { Executor } from '../db/database.ts';
import { listQueryTemplate } from '../db/query-template.ts';
import type { PaymentLogsTable } from '../db/schema.ts';

const SUMMARY = ['id', 'gateway', 'kind', 'transaction_id', 'amount_minor', 'currency', 'status', 'verdict', 'flagged', 'message', 'remote_ip', 'created_at'] as const;

/**
 * The verified payment-log entries of one order, newest first (the order detail's `payments`), all of them:
 * only the gateway can add to these, so requests anyone can send never push them out of view.
 */
export function listPaymentLogsForOrder(db: Executor, orderNo: string) {
  return db
    .selectFrom('payment_logs')
    .select(SUMMARY)
    .where('order_no', '=', orderNo)
    .where('unverified', '=', 0)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .execute();
}

export type PaymentLogSummary = Awaited<ReturnType<typeof listPaymentLogsForOrder>>[number];

/** One page of the requests refused before verification that claimed this order, newest first. */
export function listRejectedCallbacksForOrder(db: Executor, orderNo: string, page: { limit: number; offset: number }) {
  return db
    .selectFrom('payment_logs')
    .select(['id', 'gateway', 'kind', 'verdict', 'message', 'remote_ip', 'callback_bytes', 'callback_sha256', 'created_at'])
    .where('order_no', '=', orderNo)
    .where('unverified', '=', 1)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(page.limit)
    .offset(page.offset)
    .execute();
}

export type RejectedCallbackSummary = Awaited<ReturnType<typeof listRejectedCallbacksForOrder>>[number];

export async function countRejectedCallbacksForOrder(db: Executor, orderNo: string): Promise<number> {
  const row = await db
    .selectFrom('payment_logs')
    .select((eb) => eb.fn.countAll().as('n'))
    .where('order_no', '=', orderNo)
    .where('unverified', '=', 1)
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

export interface NewPaymentLog {
  orderNo: string | null;
  gateway: string;
  kind: 'notify' | 'return';
  transactionId?: string | null;
  amountMinor?: number | null;
  currency?: string | null;
  status?: string | null;
  verdict: string;
  flagged?: boolean;
  message?: string | null;
  paymentData?: string | null;
  /** The request as received; for a rejected one an excerpt, with its full size and hash below. */
  callbackData: string;
  callbackBytes?: number | null;
  callbackSha256?: string | null;
  /** Refused before verification (allowlist, signature, shape, timestamp): listed apart from the order's history. */
  unverified?: boolean;
  remoteIp: string | null;
  now: string;
}

/** Every column but the id, none optional. */
type PaymentLogRow = Required<Omit<Insertable<PaymentLogsTable>, 'id'>>;

// Every column is always listed (NULL when absent), so one compiled statement serves every entry.
const COLUMNS = {
  order_no: true,
  gateway: true,
  kind: true,
  transaction_id: true,
  amount_minor: true,
  currency: true,
  status: true,
  verdict: true,
  flagged: true,
  message: true,
  payment_data: true,
  callback_data: true,
  remote_ip: true,
  created_at: true,
  callback_bytes: true,
  callback_sha256: true,
  unverified: true,
} as const;
const insertPaymentLogsTemplate = listQueryTemplate({}, COLUMNS, 64, (db, _v: object, rows: readonly PaymentLogRow[]) => db.insertInto('payment_logs').values([...rows]));

/** The payment-log insert, unexecuted (to send with other statements of a transaction). */
export function paymentLogInsert(db: Executor, log: NewPaymentLog) {
  return paymentLogsInsert(db, [log]);
}

/** Several entries (a grouped callback commit) in one unexecuted insert. */
export function paymentLogsInsert(db: Executor, logs: readonly NewPaymentLog[]) {
  return insertPaymentLogsTemplate.bind(db, {}, logs.map(toRow));
}

function toRow(log: NewPaymentLog): PaymentLogRow {
  return {
    order_no: log.orderNo,
    gateway: log.gateway,
    kind: log.kind,
    transaction_id: log.transactionId ?? null,
    amount_minor: log.amountMinor ?? null,
    currency: log.currency ?? null,
    status: log.status ?? null,
    verdict: log.verdict,
    flagged: log.flagged ? 1 : 0,
    message: log.message ? log.message.slice(0, 512) : null,
    payment_data: log.paymentData ?? null,
    callback_data: log.callbackData,
    remote_ip: log.remoteIp,
    created_at: log.now,
    callback_bytes: log.callbackBytes ?? null,
    callback_sha256: log.callbackSha256 ?? null,
    unverified: log.unverified ? 1 : 0,
  };
}

export async function insertPaymentLog(db: Executor, log: NewPaymentLog): Promise<void> {
  await paymentLogInsert(db, log).execute();
}
