import type { ServerResponse } from 'node:http';

/*
 * The refund side of the generic stand-in (generic-query-standin.ts): its own refund ledger, refusing what a real
 * gateway refuses (an unpaid trade, more than was paid, another currency, one refund_no reused for another refund),
 * accepting the same refund again idempotently, and misbehaving on request. Amounts are compared with its own
 * decimal arithmetic, not the project's.
 */

export type StandinRefundStatus = 'refund_success' | 'refund_failed' | 'refund_pending';

export interface StandinRefund {
  orderNo: string;
  status: StandinRefundStatus;
  /** Decimal text, as the refund request stated it (a test may set another to answer a wrong amount). */
  amount?: string;
  currency?: string;
}

/**
 * How a refund request is answered: `normal` by the books (200 accepted, 4xx refused); `http-500` and `http-429`
 * without touching the books; `accept-then-500` records the refund, then answers 500 (the money moved, the answer
 * was lost); `hang` never answers; `reset` drops the connection.
 */
export type RefundRequestBehaviour = 'normal' | 'http-500' | 'http-429' | 'accept-then-500' | 'hang' | 'reset';

/** Units of 10^-18: enough for any currency's minor unit, independent of the project's money code. */
function units(decimal: string): bigint | null {
  const m = /^(\d{1,18})(?:\.(\d{1,18}))?$/.exec(decimal);
  return m ? BigInt(m[1]! + (m[2] ?? '').padEnd(18, '0')) : null;
}

export interface TradeView {
  status: string;
  amount?: string;
  currency?: string;
}

export function createRefundBooks() {
  const refunds = new Map<string, StandinRefund>();

  /** The answer to a verified, fresh refund request by the books: status and JSON body. */
  function decide(form: Record<string, string>, trade: TradeView | undefined, record: boolean): { status: number; body: object } {
    const refuse = (status: number, error: string, message: string) => ({ status, body: { error, message } });
    const { order_no: orderNo, refund_no: refundNo, refund_amount: amount, currency } = form;
    const asked = units(amount ?? '');
    if (!orderNo || !refundNo || asked === null || asked === 0n || !currency)
      return refuse(400, 'invalid_request', 'order_no, refund_no, refund_amount and currency are required');
    const known = refunds.get(refundNo);
    if (known) {
      const same = known.orderNo === orderNo && units(known.amount ?? '') === asked && known.currency === currency;
      return same
        ? { status: 200, body: { refund_no: refundNo, accepted: true } }
        : refuse(409, 'refund_no_used', `refund_no ${refundNo} was used for another refund`);
    }
    if (!trade || trade.status !== 'success') return refuse(409, 'trade_not_paid', `trade ${orderNo} is not paid`);
    if (trade.currency && trade.currency !== currency) return refuse(400, 'currency_mismatch', `trade ${orderNo} was paid in ${trade.currency}`);
    const refunded = [...refunds.values()]
      .filter((r) => r.orderNo === orderNo && r.status !== 'refund_failed')
      .reduce((sum, r) => sum + (units(r.amount ?? '') ?? 0n), 0n);
    if (asked + refunded > (units(trade.amount ?? '') ?? 0n)) return refuse(409, 'refund_exceeds_paid', 'insufficient refundable amount of the trade');
    if (record) refunds.set(refundNo, { orderNo, status: 'refund_pending', amount, currency });
    return { status: 200, body: { refund_no: refundNo, accepted: true } };
  }

  return {
    refunds,
    /** Answers a verified refund request with the given behaviour. */
    answer(res: ServerResponse, form: Record<string, string>, trade: TradeView | undefined, behaviour: RefundRequestBehaviour, hang: () => void): void {
      const json = (status: number, body: object) => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      switch (behaviour) {
        case 'hang':
          return hang();
        case 'reset':
          return void res.socket?.destroy();
        case 'http-500':
          return json(500, { error: 'internal', message: 'the refund service is down' });
        case 'http-429':
          return json(429, { error: 'frequency_limited', message: 'too many refund requests' });
        case 'accept-then-500':
          decide(form, trade, true);
          return json(500, { error: 'internal', message: 'the answer was lost' });
        case 'normal': {
          const { status, body } = decide(form, trade, true);
          return json(status, body);
        }
      }
    },
  };
}
