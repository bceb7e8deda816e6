import type { Database, Executor } from '../db/database.ts';
import { isUniqueViolation } from '../db/db-errors.ts';
import { signQueryAnswer, verifyQueryRequest, type QueryAnswerFields } from '../reconcile/query-protocol.ts';
import { InvalidStateError } from '../shared/errors.ts';
import { formatAmount } from '../shared/money.ts';
import { toDbTime, type Clock } from '../shared/time.ts';

export interface SandboxPayment {
  orderNo: string;
  transactionId: string;
  status: 'success' | 'failed';
  amountMinor: number;
  currency: string;
  /** Paid with "lose the notification": the gateway knows it, the service does not (yet). */
  notificationLost: boolean;
}

/**
 * The sandbox gateway's own books: what it was told at its checkout, and the query protocol answered from
 * them (signed with GATEWAY_SECRET, like its notifications), as a real gateway answers from its ledger.
 */
export function createSandboxGateway(db: Database, secret: string, clock: Clock) {
  /** Written before the notification is sent; a second payment of one order is refused, as at a gateway. */
  async function record(exec: Executor, payment: SandboxPayment): Promise<void> {
    try {
      await exec
        .insertInto('sandbox_payments')
        .values({
          order_no: payment.orderNo,
          transaction_id: payment.transactionId,
          status: payment.status,
          amount_minor: payment.amountMinor,
          currency: payment.currency,
          notification_lost: payment.notificationLost ? 1 : 0,
          created_at: toDbTime(clock()),
        })
        .execute();
    } catch (err) {
      if (isUniqueViolation(err)) throw new InvalidStateError(`Sandbox order ${payment.orderNo} was already paid or failed at the sandbox gateway`);
      throw err;
    }
  }

  async function find(orderNo: string) {
    return db.kysely.selectFrom('sandbox_payments').selectAll().where('order_no', '=', orderNo).executeTakeFirst();
  }

  /** The query protocol's answer to a form: 200 with the signed JSON, or 401/400 with an error, as a gateway would. */
  async function answerQuery(form: Record<string, unknown>): Promise<{ status: number; body: string }> {
    const checked = verifyQueryRequest(form, secret, clock());
    if (!checked.ok)
      return { status: checked.reason === 'bad_signature' ? 401 : 400, body: JSON.stringify({ error: checked.reason, message: checked.message }) };
    const row = await find(checked.value.orderNo);
    const fields: QueryAnswerFields = row
      ? {
          order_no: row.order_no,
          status: row.status === 'success' ? 'success' : 'failed',
          amount: formatAmount(Number(row.amount_minor), row.currency),
          currency: row.currency,
          transaction_id: row.transaction_id,
        }
      : { order_no: checked.value.orderNo, status: 'pending' };
    return { status: 200, body: signQueryAnswer(fields, secret, clock()) };
  }

  return { record, find, answerQuery };
}

export type SandboxGateway = ReturnType<typeof createSandboxGateway>;
