import { timingSafeEqual } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gatewaySign } from './gateway-signer.ts';
import { createRefundBooks, type RefundRequestBehaviour, type StandinRefund } from './generic-refund-books.ts';

/*
 * A local gateway answering the generic query protocol: `POST /query` form {order_no, timestamp, nonce, sign_type,
 * sign}, answered with signed JSON {order_no, status, amount, currency, transaction_id, timestamp, sign_type, sign};
 * with `refund_no` in the form, about that refund: {order_no, refund_no, status, refund_amount, currency, ...}
 * (`refund_not_found` when it has none). `POST /refund` takes the refund protocol's signed request and answers by
 * its refund books (generic-refund-books.ts): 200 accepted, 4xx refused.
 * It checks every request with the test's own signer (test/helpers/gateway-signer.ts, not the project's), keeps
 * per-order trade state, records what it was asked, and can misbehave in the ways a real gateway (or a forger) does.
 */

export type TradeStatus = 'success' | 'failed' | 'pending' | 'closed';

/** What the gateway knows about one order; an order it was never told about is `pending`. */
export interface StandinTrade {
  status: TradeStatus;
  amount?: string;
  currency?: string;
  transactionId?: string;
}

/**
 * `mis-signed`: signed with another key; `unsigned`: no sign; `garbage`: 200 text that is not JSON; `http-500`: a
 * server error; `hang`: never answers; `stale-timestamp`: correctly signed, an hour old; `other-order`: a correctly
 * signed, fresh, paid answer about another order; `other-refund` (refund queries): the same about another refund.
 */
export type StandinBehaviour = 'normal' | 'mis-signed' | 'unsigned' | 'garbage' | 'http-500' | 'hang' | 'stale-timestamp' | 'other-order' | 'other-refund';
export type { RefundRequestBehaviour, StandinRefund };

export interface StandinRequest {
  /** `query` and `refund-query` at /query (the latter with refund_no), `refund` at /refund. */
  kind: 'query' | 'refund-query' | 'refund';
  form: Record<string, string>;
  /** The order asked about (when the request named one). */
  orderNo: string | null;
  refundNo: string | null;
  /** Whether the request's signature was valid under the shared secret. */
  signed: boolean;
  /** Whether its timestamp was within 300 s of the stand-in's clock. */
  fresh: boolean;
  /** The behaviour the request was answered with (null: refused before, 401/400). */
  behaviour: StandinBehaviour | RefundRequestBehaviour | null;
}

export interface GenericQueryStandin {
  url: string;
  /** The refund protocol's request endpoint (GENERIC_REFUND_URL). */
  refundUrl: string;
  requests: StandinRequest[];
  setTrade(orderNo: string, trade: StandinTrade): void;
  /** For every order, or for one order only (that one wins): order queries and refund queries. */
  setBehaviour(behaviour: StandinBehaviour, orderNo?: string): void;
  /** What the books hold for a refund (a refund request accepted it as `refund_pending`); a test moves it on. */
  setRefund(refundNo: string, refund: StandinRefund): void;
  refundOf(refundNo: string): StandinRefund | undefined;
  /** For every refund request, or for one refund_no only (that one wins). */
  setRefundBehaviour(behaviour: RefundRequestBehaviour, refundNo?: string): void;
  /** Verified order queries about the order so far (refund requests and refund queries are not counted). */
  askedAbout(orderNo: string): number;
  /** Resolves when a verified order query about the order arrives (at once if one already did). */
  waitForRequest(orderNo: string): Promise<void>;
  /** Answers the requests still hanging, normally (a slow gateway that answers after all). */
  release(): void;
  close(): Promise<void>;
}

const WINDOW_S = 300;
const WRONG_KEY = 'not-the-shared-gateway-secret-42';
const unix = (d: Date) => Math.floor(d.getTime() / 1000);

function signatureValid(form: Record<string, string>, secret: string): boolean {
  const type = form.sign_type === undefined || form.sign_type === '' ? 'MD5' : form.sign_type;
  if ((type !== 'MD5' && type !== 'HMAC-SHA256') || !form.sign) return false;
  const expected = Buffer.from(gatewaySign(form, secret, type));
  const given = Buffer.from(form.sign.toUpperCase());
  return expected.length === given.length && timingSafeEqual(expected, given);
}

/** The signed JSON answer, written the way a gateway's SDK would (every non-empty field, HMAC-SHA256). */
export function standinAnswer(fields: Record<string, string | undefined>, key: string, at: Date, options: { unsigned?: boolean } = {}): string {
  const body: Record<string, string> = { timestamp: String(unix(at)), sign_type: 'HMAC-SHA256' };
  for (const [k, v] of Object.entries(fields)) if (v !== undefined && v !== '') body[k] = v;
  return JSON.stringify(options.unsigned ? body : { ...body, sign: gatewaySign(body, key, 'HMAC-SHA256') });
}

export async function startGenericQueryStandin(options: { secret: string; now?: () => Date }): Promise<GenericQueryStandin> {
  const now = options.now ?? (() => new Date());
  const trades = new Map<string, StandinTrade>();
  const perOrder = new Map<string, StandinBehaviour>();
  let behaviour: StandinBehaviour = 'normal';
  const requests: StandinRequest[] = [];
  const hanging = new Map<ServerResponse, StandinRequest>();
  const books = createRefundBooks();
  const perRefund = new Map<string, RefundRequestBehaviour>();
  let refundBehaviour: RefundRequestBehaviour = 'normal';
  const waiters: Array<{ orderNo: string; resolve: () => void }> = [];

  function hang(res: ServerResponse, entry: StandinRequest): void {
    hanging.set(res, entry);
    res.on('close', () => hanging.delete(res));
  }

  /** A refund query's fields: what the books hold for that refund of that order, or refund_not_found. */
  function refundFields(orderNo: string, refundNo: string): Record<string, string | undefined> {
    const refund = books.refunds.get(refundNo);
    if (!refund || refund.orderNo !== orderNo) return { order_no: orderNo, refund_no: refundNo, status: 'refund_not_found' };
    return { order_no: orderNo, refund_no: refundNo, status: refund.status, refund_amount: refund.amount, currency: refund.currency };
  }

  function answer(res: ServerResponse, entry: StandinRequest, mode: StandinBehaviour | RefundRequestBehaviour): void {
    const orderNo = entry.orderNo!;
    if (entry.kind === 'refund') return books.answer(res, entry.form, trades.get(orderNo), mode as RefundRequestBehaviour, () => hang(res, entry));
    const trade = trades.get(orderNo) ?? { status: 'pending' };
    const refundNo = entry.refundNo;
    const fields = refundNo
      ? refundFields(orderNo, refundNo)
      : { order_no: orderNo, status: trade.status, amount: trade.amount, currency: trade.currency, transaction_id: trade.transactionId };
    const json = (body: string, status = 200) => void res.writeHead(status, { 'content-type': 'application/json' }).end(body);
    switch (mode as StandinBehaviour) {
      case 'hang':
        return hang(res, entry);
      case 'http-500':
        return json('{"error":"internal","message":"the ledger is down"}', 500);
      case 'garbage':
        res.writeHead(200, { 'content-type': 'text/html' }).end('<html><body>Service temporarily unavailable</body></html>');
        return;
      case 'mis-signed':
        return json(standinAnswer(fields, WRONG_KEY, now()));
      case 'unsigned':
        return json(standinAnswer(fields, options.secret, now(), { unsigned: true }));
      case 'stale-timestamp':
        return json(standinAnswer(fields, options.secret, new Date(now().getTime() - 3600_000)));
      case 'other-order':
        if (refundNo) return json(standinAnswer({ ...fields, order_no: `${orderNo}-OTHER` }, options.secret, now()));
        return json(
          standinAnswer(
            { order_no: `${orderNo}-OTHER`, status: 'success', amount: trade.amount ?? '12.34', currency: trade.currency, transaction_id: 'TX-OTHER' },
            options.secret,
            now(),
          ),
        );
      case 'other-refund':
        return json(
          standinAnswer({ ...fields, refund_no: `${refundNo ?? 'R'}-OTHER`, status: 'refund_success', refund_amount: '0.01' }, options.secret, now()),
        );
      case 'normal':
        return json(standinAnswer(fields, options.secret, now()));
    }
  }

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      const form: Record<string, string> = {};
      let repeated = false;
      for (const [k, v] of raw) {
        if (k in form) repeated = true;
        form[k] = v;
      }
      const signed = !repeated && signatureValid(form, options.secret);
      const ts = Number(form.timestamp);
      const fresh = /^\d+$/.test(form.timestamp ?? '') && Math.abs(unix(now()) - ts) <= WINDOW_S;
      const orderNo = form.order_no || null;
      const refundNo = form.refund_no || null;
      const kind = req.url === '/refund' ? 'refund' : refundNo ? 'refund-query' : 'query';
      const entry: StandinRequest = { kind, form, orderNo, refundNo, signed, fresh, behaviour: null };
      requests.push(entry);
      const json = (status: number, body: object) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      if (req.method !== 'POST' || (req.url !== '/query' && req.url !== '/refund')) return json(404, { error: 'not_found' });
      if (!signed) return json(401, { error: 'bad_signature' });
      if (!fresh || !orderNo) return json(400, { error: 'bad_request' });
      const mode = kind === 'refund' ? ((refundNo ? perRefund.get(refundNo) : undefined) ?? refundBehaviour) : (perOrder.get(orderNo) ?? behaviour);
      entry.behaviour = mode;
      for (const w of waiters.filter((w) => kind === 'query' && w.orderNo === orderNo)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
      answer(res, entry, mode);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const askedAbout = (orderNo: string) => requests.filter((r) => r.kind === 'query' && r.orderNo === orderNo && r.behaviour !== null).length;

  return {
    url: `http://127.0.0.1:${port}/query`,
    refundUrl: `http://127.0.0.1:${port}/refund`,
    requests,
    setTrade: (orderNo, trade) => void trades.set(orderNo, trade),
    setBehaviour(b, orderNo) {
      if (orderNo === undefined) behaviour = b;
      else perOrder.set(orderNo, b);
    },
    setRefund: (refundNo, refund) => void books.refunds.set(refundNo, refund),
    refundOf: (refundNo) => books.refunds.get(refundNo),
    setRefundBehaviour(b, refundNo) {
      if (refundNo === undefined) refundBehaviour = b;
      else perRefund.set(refundNo, b);
    },
    askedAbout,
    waitForRequest: (orderNo) => (askedAbout(orderNo) > 0 ? Promise.resolve() : new Promise((resolve) => waiters.push({ orderNo, resolve }))),
    release() {
      for (const [res, entry] of [...hanging]) {
        hanging.delete(res);
        answer(res, entry, 'normal');
      }
    },
    async close() {
      for (const res of hanging.keys()) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
