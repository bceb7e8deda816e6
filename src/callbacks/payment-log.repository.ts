import type { Insertable } from 'kysely';
import type { Executor } from '../db/database.ts';
import { GROUP_LIST_ROWS, listQueryTemplate } from '../db/fast-path/query-template.ts';
import type { PaymentLogsTable } from '../db/schema.ts';

export interface NewPaymentLog {
  orderNo: string | null;
  gateway: string;
  /** `query`: the gateway's answer to the reconciler's question, not a callback. */
  kind: 'notify' | 'return' | 'query';
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
const insertPaymentLogsTemplate = listQueryTemplate({}, COLUMNS, GROUP_LIST_ROWS, (db, _v: object, rows: readonly PaymentLogRow[]) =>
  db.insertInto('payment_logs').values([...rows]),
);

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
