import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto';

/*
 * A local WeChat Pay API v3 (query by out_trade_no, close, refund and refund query) written from WeChat's documentation, independently of the
 * client: it checks every request's `Authorization: WECHATPAY2-SHA256-RSA2048 …` with the merchant PUBLIC key over
 * "METHOD\nrequest-target\ntimestamp\nnonce\nbody\n" and answers 401 SIGN_ERROR when it does not verify, as WeChat
 * does; its answers are signed with a platform private key (Wechatpay-Signature over "timestamp\nnonce\nbody\n").
 */

const rsa = () => generateKeyPairSync('rsa', { modulusLength: 2048 });
const merchant = rsa();
const platform = rsa();
const pem = (key: KeyObject) => key.export({ type: key.type === 'private' ? 'pkcs8' : 'spki', format: 'pem' }).toString();

/** The test keys: the client gets the merchant private key and the platform public key; the stand-in the other halves. */
export const WECHATPAY_STANDIN_KEYS = {
  mchId: '1900000109',
  merchantSerial: '3775B6A45ACD588826D15E583A95F5DD7E2C1A09',
  merchantPrivateKeyPem: pem(merchant.privateKey),
  merchantPublicKey: merchant.publicKey,
  platformSerial: 'PUB_KEY_ID_0119000001092025060600001234',
  platformPrivateKey: platform.privateKey,
  platformKeysJson: JSON.stringify({ PUB_KEY_ID_0119000001092025060600001234: pem(platform.publicKey) }),
  /** Not WeChat's: for signing answers that must not verify. */
  rogue: rsa(),
};

export type TradeState = 'SUCCESS' | 'REFUND' | 'NOTPAY' | 'CLOSED' | 'REVOKED' | 'USERPAYING' | 'PAYERROR';
/** What the gateway knows about one out_trade_no; `mchid`/`appid` override ours (a foreign answer). */
export interface StandinTrade {
  state: TradeState;
  total?: number;
  currency?: string;
  transactionId?: string;
  mchid?: string;
  appid?: string;
}

/**
 * `mis-signed`: signed with a key that is not the platform's; `unsigned`: no Wechatpay-* headers; `stale`: signed
 * 10 minutes ago; `unknown-serial`: a serial the client was not given; `garbage`: a well-signed 200 that is not JSON;
 * `http-500`: SYSTEM_ERROR; `http-429`: FREQUENCY_LIMITED; `hang`: never answers; `lose-answer`: does what was asked
 * (a refund is made), then never answers.
 */
export type StandinBehaviour = 'normal' | 'mis-signed' | 'unsigned' | 'stale' | 'unknown-serial' | 'garbage' | 'http-500' | 'http-429' | 'hang' | 'lose-answer';

export type RefundStatus = 'SUCCESS' | 'PROCESSING' | 'CLOSED' | 'ABNORMAL';
/** What the gateway knows about one out_refund_no; `answerAs` overrides the out_refund_no its answers name. */
export interface StandinRefund {
  status: RefundStatus;
  outTradeNo: string;
  refund: number;
  total: number;
  currency?: string;
  refundId?: string;
  transactionId?: string;
  answerAs?: string;
}
/** How the stand-in answers the next new refund request: made with this status, or refused with this error. */
export type RefundReaction = { status: RefundStatus } | { refuse: { status: number; code: string; message: string } };

export interface StandinRequest {
  method: string;
  /** The request target as received (path and query). */
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** Whether the Authorization header verified; `refusal` says why not. */
  authorized: boolean;
  refusal?: string;
}

const TIME_WINDOW_S = 300;
const QUERY = /^\/v3\/pay\/transactions\/out-trade-no\/([^/?]+)\?mchid=([^&]*)$/;
const CLOSE = /^\/v3\/pay\/transactions\/out-trade-no\/([^/?]+)\/close$/;
const REFUNDS = '/v3/refund/domestic/refunds';
const REFUND_QUERY = /^\/v3\/refund\/domestic\/refunds\/([^/?]+)$/;

/** Why WeChat would refuse this request's Authorization, or undefined when it verifies. */
function checkAuthorization(req: IncomingMessage, body: string, mchId: string, serial: string, key: KeyObject): string | undefined {
  const match = /^WECHATPAY2-SHA256-RSA2048 (.+)$/.exec(req.headers.authorization ?? '');
  if (!match) return 'no WECHATPAY2-SHA256-RSA2048 Authorization';
  const params = new Map([...match[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
  const [mchid, nonce, timestamp, serialNo, signature] = ['mchid', 'nonce_str', 'timestamp', 'serial_no', 'signature'].map((k) => params.get(k));
  if (!mchid || !nonce || !timestamp || !serialNo || !signature) return 'Authorization lacks a parameter';
  if (mchid !== mchId) return `unknown mchid ${mchid}`;
  if (serialNo.toUpperCase() !== serial.toUpperCase()) return `unknown merchant serial ${serialNo}`;
  if (!/^\d+$/.test(timestamp) || Math.abs(Date.now() / 1000 - Number(timestamp)) > TIME_WINDOW_S) return 'timestamp out of window';
  const message = `${req.method}\n${req.url}\n${timestamp}\n${nonce}\n${body}\n`;
  return verify('RSA-SHA256', Buffer.from(message, 'utf8'), key, Buffer.from(signature, 'base64')) ? undefined : 'signature does not verify';
}

function transactionJson(mchId: string, orderNo: string, t: StandinTrade): Record<string, unknown> {
  const paid = t.state === 'SUCCESS' || t.state === 'REFUND';
  return {
    appid: t.appid ?? 'wxd678efh567hg6787',
    mchid: t.mchid ?? mchId,
    out_trade_no: orderNo,
    ...(paid ? { transaction_id: t.transactionId ?? `4200001${orderNo}`, bank_type: 'CMC', success_time: '2025-06-06T16:00:00+08:00' } : {}),
    trade_type: 'NATIVE',
    trade_state: t.state,
    trade_state_desc: t.state,
    attach: '',
    ...(paid ? { payer: { openid: 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o' } } : {}),
    amount: paid
      ? { total: t.total ?? 100, payer_total: t.total ?? 100, currency: t.currency ?? 'CNY', payer_currency: t.currency ?? 'CNY' }
      : { total: t.total ?? 100, currency: t.currency ?? 'CNY', payer_currency: t.currency ?? 'CNY' },
  };
}

/** 申请退款 / 查询单笔退款 answer (the Refund object of wechatpay-go refunddomestic). */
function refundJson(outRefundNo: string, r: StandinRefund): Record<string, unknown> {
  return {
    refund_id: r.refundId ?? `50300${outRefundNo}`,
    out_refund_no: r.answerAs ?? outRefundNo,
    transaction_id: r.transactionId ?? `4200001${r.outTradeNo}`,
    out_trade_no: r.outTradeNo,
    channel: 'ORIGINAL',
    user_received_account: '支付用户零钱',
    ...(r.status === 'SUCCESS' ? { success_time: '2025-06-06T16:05:00+08:00' } : {}),
    create_time: '2025-06-06T16:04:00+08:00',
    status: r.status,
    funds_account: 'AVAILABLE',
    amount: {
      total: r.total,
      refund: r.refund,
      from: [],
      payer_total: r.total,
      payer_refund: r.refund,
      settlement_refund: r.refund,
      settlement_total: r.total,
      discount_refund: 0,
      currency: r.currency ?? 'CNY',
    },
    promotion_detail: [],
  };
}

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/** The fields of a 申请退款 body, or undefined when WeChat would answer PARAM_ERROR. */
function refundRequest(body: string) {
  let parsed: { transaction_id?: unknown; out_trade_no?: unknown; out_refund_no?: unknown; reason?: unknown; amount?: Record<string, unknown> };
  try {
    parsed = JSON.parse(body) as typeof parsed;
  } catch {
    return undefined;
  }
  const { transaction_id: transactionId, out_trade_no: outTradeNo, out_refund_no: outRefundNo, amount } = parsed;
  if (typeof outRefundNo !== 'string' || !/^[0-9A-Za-z_\-|*@]{1,64}$/.test(outRefundNo)) return undefined;
  if ((typeof transactionId === 'string') === (typeof outTradeNo === 'string')) return undefined; // exactly one of them
  if (parsed.reason !== undefined && (typeof parsed.reason !== 'string' || [...parsed.reason].length > 80)) return undefined;
  if (!amount || !isCount(amount.refund) || amount.refund < 1 || !isCount(amount.total) || amount.currency !== 'CNY') return undefined;
  return { transactionId, outTradeNo, outRefundNo, refund: amount.refund, total: amount.total };
}

export interface WechatpayStandinOptions {
  mchId?: string;
  merchantSerial?: string;
  merchantPublicKey?: KeyObject;
}

/** Starts the stand-in on 127.0.0.1; `url` is the API base (WECHATPAY_API_BASE). */
export async function startWechatpayStandin(options: WechatpayStandinOptions = {}) {
  const keys = WECHATPAY_STANDIN_KEYS;
  const mchId = options.mchId ?? keys.mchId;
  const trades = new Map<string, StandinTrade>();
  const refunds = new Map<string, StandinRefund>();
  const requests: StandinRequest[] = [];
  let behaviour: StandinBehaviour = 'normal';
  let reaction: RefundReaction = { status: 'PROCESSING' };

  function answer(res: ServerResponse, status: number, payload: Record<string, unknown> | null) {
    let body = payload === null ? '' : JSON.stringify(payload);
    if (behaviour === 'garbage') [status, body] = [200, '<html><body>502 Bad Gateway</body></html>'];
    if (behaviour === 'http-500') [status, body] = [500, JSON.stringify({ code: 'SYSTEM_ERROR', message: '系统错误' })];
    if (behaviour === 'http-429') [status, body] = [429, JSON.stringify({ code: 'FREQUENCY_LIMITED', message: '频率限制' })];
    if (behaviour === 'lose-answer') return;
    const headers: Record<string, string> = { 'Request-ID': randomBytes(12).toString('hex') };
    if (body !== '') headers['Content-Type'] = 'application/json; charset=utf-8';
    if (behaviour !== 'unsigned') {
      const timestamp = String(Math.floor(Date.now() / 1000) - (behaviour === 'stale' ? 600 : 0));
      const nonce = randomBytes(16).toString('hex');
      const key = behaviour === 'mis-signed' ? keys.rogue.privateKey : keys.platformPrivateKey;
      headers['Wechatpay-Timestamp'] = timestamp;
      headers['Wechatpay-Nonce'] = nonce;
      headers['Wechatpay-Signature'] = sign('RSA-SHA256', Buffer.from(`${timestamp}\n${nonce}\n${body}\n`, 'utf8'), key).toString('base64');
      headers['Wechatpay-Serial'] = behaviour === 'unknown-serial' ? 'PUB_KEY_ID_0119000001092099010100009999' : keys.platformSerial;
    }
    res.writeHead(status, headers).end(body);
  }

  /** 申请退款: the same out_refund_no answers the refund it made; a new one is checked against the paid trade. */
  function createRefund(body: string, res: ServerResponse) {
    const r = refundRequest(body);
    if (!r) return answer(res, 400, { code: 'PARAM_ERROR', message: '参数错误' });
    const known = refunds.get(r.outRefundNo);
    if (known) return answer(res, 200, refundJson(r.outRefundNo, known));
    if ('refuse' in reaction) return answer(res, reaction.refuse.status, { code: reaction.refuse.code, message: reaction.refuse.message });
    const found = [...trades].find(([no, t]) => (r.outTradeNo ? no === r.outTradeNo : (t.transactionId ?? `4200001${no}`) === r.transactionId));
    if (!found || (found[1].state !== 'SUCCESS' && found[1].state !== 'REFUND'))
      return answer(res, 404, { code: 'RESOURCE_NOT_EXISTS', message: '订单号不存在' });
    const [orderNo, trade] = found;
    if (r.total !== (trade.total ?? 100)) return answer(res, 400, { code: 'INVALID_REQUEST', message: '订单金额与原订单不一致' });
    const taken = [...refunds.values()].filter((x) => x.outTradeNo === orderNo && x.status !== 'CLOSED' && x.status !== 'ABNORMAL');
    if (taken.reduce((sum, x) => sum + x.refund, 0) + r.refund > r.total)
      return answer(res, 400, { code: 'INVALID_REQUEST', message: '申请退款金额超过订单可退金额' });
    const made: StandinRefund = { status: reaction.status, outTradeNo: orderNo, refund: r.refund, total: r.total, transactionId: trade.transactionId };
    refunds.set(r.outRefundNo, made);
    trades.set(orderNo, { ...trade, state: 'REFUND' });
    return answer(res, 200, refundJson(r.outRefundNo, made));
  }

  function route(method: string, url: string, body: string, res: ServerResponse) {
    if (method === 'POST' && url === REFUNDS) return createRefund(body, res);
    const refundQuery = method === 'GET' ? REFUND_QUERY.exec(url) : null;
    if (refundQuery) {
      const outRefundNo = decodeURIComponent(refundQuery[1]!);
      const known = refunds.get(outRefundNo);
      return known ? answer(res, 200, refundJson(outRefundNo, known)) : answer(res, 404, { code: 'RESOURCE_NOT_EXISTS', message: '退款单不存在' });
    }
    const query = method === 'GET' ? QUERY.exec(url) : null;
    const close = method === 'POST' ? CLOSE.exec(url) : null;
    if (!query && !close) return answer(res, 404, { code: 'NOT_FOUND', message: 'no such API' });
    const orderNo = decodeURIComponent((query ?? close)![1]!);
    let claimed: unknown = query ? decodeURIComponent(query[2]!) : undefined;
    if (close) {
      try {
        claimed = (JSON.parse(body) as { mchid?: unknown }).mchid;
      } catch {
        return answer(res, 400, { code: 'PARAM_ERROR', message: 'body is not JSON' });
      }
    }
    if (claimed !== mchId) return answer(res, 400, { code: 'PARAM_ERROR', message: 'mchid does not match the request signer' });
    const trade = trades.get(orderNo);
    if (!trade) return answer(res, 404, { code: 'ORDER_NOT_EXIST', message: '订单不存在' });
    if (query) return answer(res, 200, transactionJson(mchId, orderNo, trade));
    if (trade.state === 'SUCCESS' || trade.state === 'REFUND') return answer(res, 403, { code: 'ORDERPAID', message: '订单已支付' });
    if (trade.state === 'NOTPAY' || trade.state === 'USERPAYING') trades.set(orderNo, { ...trade, state: 'CLOSED' });
    return answer(res, 204, null);
  }

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const refusal = checkAuthorization(req, body, mchId, options.merchantSerial ?? keys.merchantSerial, options.merchantPublicKey ?? keys.merchantPublicKey);
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, authorized: refusal === undefined, refusal });
      if (behaviour === 'hang') return;
      if (refusal !== undefined) return answer(res, 401, { code: 'SIGN_ERROR', message: '签名错误' });
      route(req.method ?? '', req.url ?? '', body, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    /** What the gateway knows about `orderNo`; null forgets it (ORDER_NOT_EXIST). */
    setTrade(orderNo: string, trade: StandinTrade | null) {
      if (trade === null) trades.delete(orderNo);
      else trades.set(orderNo, trade);
    },
    trade: (orderNo: string) => trades.get(orderNo),
    /** What the gateway knows about `outRefundNo`; null forgets it (RESOURCE_NOT_EXISTS). */
    setRefund(outRefundNo: string, refund: StandinRefund | null) {
      if (refund === null) refunds.delete(outRefundNo);
      else refunds.set(outRefundNo, refund);
    },
    refund: (outRefundNo: string) => refunds.get(outRefundNo),
    /** How the next new refund request is answered (made PROCESSING until told otherwise). */
    setRefundReaction(next: RefundReaction) {
      reaction = next;
    },
    setBehaviour(next: StandinBehaviour) {
      behaviour = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export type WechatpayStandin = Awaited<ReturnType<typeof startWechatpayStandin>>;

/** The settings that point the service's WeChat Pay client (and callback adapter) at a stand-in. */
export function wechatpayStandinEnv(standin: { url: string }): Record<string, string> {
  const keys = WECHATPAY_STANDIN_KEYS;
  return {
    WECHATPAY_API_BASE: standin.url,
    WECHATPAY_MCH_ID: keys.mchId,
    WECHATPAY_MCH_SERIAL: keys.merchantSerial,
    WECHATPAY_MCH_PRIVATE_KEY: keys.merchantPrivateKeyPem,
    WECHATPAY_PLATFORM_KEYS: keys.platformKeysJson,
    WECHATPAY_APIV3_KEY: 'Vw3xK9pQ2mR7tY5uB8nL4cJ6hF1dS0aZ',
  };
}
