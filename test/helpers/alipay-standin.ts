import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createSign, createVerify, generateKeyPairSync, type KeyObject } from 'node:crypto';

/*
 * A local Alipay OpenAPI gateway (gateway.do: alipay.trade.query, alipay.trade.close, alipay.trade.refund and
 * alipay.trade.fastpay.refund.query) written from Alipay's
 * documentation, independently of the client: it merges the URL and form parameters, checks `sign` (RSA2, SHA256withRSA
 * with the APP's public key over every parameter but sign, empty ones skipped, sorted, `k=v&…`) and answers 40002
 * isv.invalid-signature when it does not verify, as Alipay does. Every answer is `{"<method>_response":{…},"sign":"…"}`,
 * signed with the platform private key over the raw text of the response value, which escapes "/" as "\/" as Alipay's does.
 */

const rsa = () => generateKeyPairSync('rsa', { modulusLength: 2048 });
const app = rsa();
const platform = rsa();
const der = (key: KeyObject) => (key.export({ type: key.type === 'private' ? 'pkcs8' : 'spki', format: 'der' }) as Buffer).toString('base64');

/** The test keys: the client gets the app private key and the platform public key; the stand-in the other halves. */
export const ALIPAY_STANDIN_KEYS = {
  appId: '2021000122600000',
  appPrivateKey: app.privateKey,
  appPrivatePkcs8Pem: app.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  appPrivatePkcs1Pem: app.privateKey.export({ type: 'pkcs1', format: 'pem' }) as string,
  /** The bare base64 forms Alipay's key tool hands out (PKCS#8 for Java, PKCS#1 for other languages). */
  appPrivatePkcs8Bare: der(app.privateKey),
  appPrivatePkcs1Bare: (app.privateKey.export({ type: 'pkcs1', format: 'der' }) as Buffer).toString('base64'),
  appPublicKey: app.publicKey,
  platformPrivateKey: platform.privateKey,
  /** ALIPAY_PUBLIC_KEY as the Alipay console shows it: bare base64 of the SPKI DER. */
  platformPublicKeyBare: der(platform.publicKey),
  platformPublicKeyPem: platform.publicKey.export({ type: 'spki', format: 'pem' }) as string,
  /** Neither the app's nor Alipay's: signs what must not verify. */
  rogue: rsa(),
};

export type AlipayTradeStatus = 'WAIT_BUYER_PAY' | 'TRADE_SUCCESS' | 'TRADE_FINISHED' | 'TRADE_CLOSED';
/** What the gateway knows about one out_trade_no; `outTradeNo` overrides the one answered (an answer about another order). */
export interface AlipayStandinTrade {
  status: AlipayTradeStatus;
  totalAmount: string;
  tradeNo?: string;
  transCurrency?: string;
  outTradeNo?: string;
  /** More fields to answer (e.g. one with a "/" to prove the raw text is what is verified). */
  extra?: Record<string, unknown>;
}

/**
 * A refund the gateway holds for one out_trade_no and out_request_no. `done: false`: accepted but not processed yet, so the
 * refund query answers without refund_status. `extra` overrides fields of the refund query's answer (another amount…).
 */
export interface AlipayStandinRefund {
  amount: string;
  done: boolean;
  extra?: Record<string, unknown>;
}

/**
 * How alipay.trade.refund treats the next requests: `normal` refunds at once (fund_change Y); `processing` accepts without
 * moving money yet (fund_change N; done by completeRefund); `{ refuse }` answers 40004 with that sub_code and refunds
 * nothing; `{ systemError }` answers 40004 ACQ.SYSTEM_ERROR, having refunded when `moved` (the outcome the caller cannot know).
 */
export type AlipayRefundMode = 'normal' | 'processing' | { refuse: string; subMsg?: string } | { systemError: true; moved: boolean };

/**
 * `mis-signed`: answers signed with a key that is not the platform's; `unsigned`: no sign member; `garbage`: a 200 that is
 * not JSON; `http-500`: an HTML 500; `hang`: never answers; `{ body }`: exactly this text (or these bytes) as a 200 answer.
 */
export type AlipayStandinBehaviour = 'normal' | 'mis-signed' | 'unsigned' | 'garbage' | 'http-500' | 'hang' | { body: string | Buffer };

export interface AlipayStandinRequest {
  /** The API method (`method` parameter). */
  api: string | undefined;
  /** The URL and form parameters merged, as the gateway verifies them. */
  params: Record<string, string>;
  signatureValid: boolean;
  /** The code and sub_code answered. */
  code: string;
  subCode?: string;
}

/** Alipay's RSA2 request signing content, written again: all parameters but sign, empty ones skipped, sorted by key. */
export function alipayRequestContent(params: Record<string, string>): string {
  return Object.keys(params)
    .filter((k) => k !== 'sign' && params[k] !== '')
    .sort()
    .map((k) => `${k}=${params[k]}`)
    .join('&');
}

/** An answer body as Alipay writes it: the response value's raw text ("/" escaped as "\/") signed as it stands. */
export function alipayAnswerBody(responseKey: string, response: Record<string, unknown>, key: KeyObject | null = platform.privateKey): string {
  const raw = JSON.stringify(response).replace(/\//g, '\\/');
  const sign = key ? `,"sign":${JSON.stringify(createSign('RSA-SHA256').update(raw, 'utf8').sign(key, 'base64'))}` : '';
  return `{"${responseKey}":${raw}${sign}}`;
}

const FAIL = { code: '40004', msg: 'Business Failed' };
const METHODS = new Set(['alipay.trade.query', 'alipay.trade.close', 'alipay.trade.refund', 'alipay.trade.fastpay.refund.query']);
/** A decimal amount of yuan (at most 2 places, as Alipay's Price type) in hundredths, or undefined. */
const cents = (v: unknown): number | undefined => {
  const m = typeof v === 'string' ? /^(\d{1,10})(?:\.(\d{1,2}))?$/.exec(v) : null;
  return m ? Number(m[1]) * 100 + Number((m[2] ?? '').padEnd(2, '0')) : undefined;
};
const yuan = (c: number) => `${Math.floor(c / 100)}.${String(c % 100).padStart(2, '0')}`;
const GATEWAY = (code: '40001' | '40002', subCode: string, subMsg: string) => ({
  code,
  msg: code === '40001' ? 'Missing Required Arguments' : 'Invalid Arguments',
  sub_code: subCode,
  sub_msg: subMsg,
});

export async function startAlipayStandin(options: { appId?: string; appPublicKey?: KeyObject } = {}) {
  const appId = options.appId ?? ALIPAY_STANDIN_KEYS.appId;
  const appPublicKey = options.appPublicKey ?? app.publicKey;
  const trades = new Map<string, AlipayStandinTrade>();
  const requests: AlipayStandinRequest[] = [];
  /** By `<out_trade_no> <out_request_no>`. */
  const refunds = new Map<string, AlipayStandinRefund>();
  let behaviour: AlipayStandinBehaviour = 'normal';
  const behaviourOf = new Map<string, AlipayStandinBehaviour>();
  let refundMode: AlipayRefundMode = 'normal';
  let tradeSeq = 0;

  const refundsOf = (orderNo: string) => [...refunds].filter(([k]) => k.startsWith(`${orderNo} `)).map(([, r]) => r);
  const refunded = (orderNo: string) => refundsOf(orderNo).reduce((sum, r) => sum + (r.done ? cents(r.amount)! : 0), 0);

  /** alipay.trade.refund for a known trade, as its documentation describes it: out_request_no makes a repeated request refund once. */
  function refund(biz: Record<string, unknown>, orderNo: string, trade: AlipayStandinTrade, tradeNo: string): Record<string, unknown> {
    const amount = cents(biz.refund_amount);
    if (amount === undefined || amount === 0) return { ...FAIL, sub_code: 'ACQ.INVALID_PARAMETER', sub_msg: '参数无效' };
    const requestNo = typeof biz.out_request_no === 'string' && biz.out_request_no !== '' ? biz.out_request_no : orderNo;
    const mode = refundMode;
    if (typeof mode === 'object' && 'refuse' in mode) return { ...FAIL, sub_code: mode.refuse, sub_msg: mode.subMsg ?? '业务处理失败' };
    const key = `${orderNo} ${requestNo}`;
    const existing = refunds.get(key);
    const base = { buyer_logon_id: '159****5620', buyer_user_id: '2088101117955611', out_trade_no: orderNo, trade_no: tradeNo };
    if (existing) {
      // The same request again refunds nothing more; the same number with other content is refused.
      if (cents(existing.amount) !== amount) return { ...FAIL, sub_code: 'ACQ.DISCORDANT_REPEAT_REQUEST', sub_msg: '不一致的请求' };
      return { code: '10000', msg: 'Success', ...base, fund_change: 'N', refund_fee: yuan(refunded(orderNo)) };
    }
    if (trade.status === 'TRADE_FINISHED') return { ...FAIL, sub_code: 'ACQ.TRADE_HAS_FINISHED', sub_msg: '交易已完结' };
    if (trade.status !== 'TRADE_SUCCESS') return { ...FAIL, sub_code: 'ACQ.TRADE_STATUS_ERROR', sub_msg: '交易状态非法' };
    const reserved = refundsOf(orderNo).reduce((sum, r) => sum + cents(r.amount)!, 0);
    if (reserved + amount > cents(trade.totalAmount)!) return { ...FAIL, sub_code: 'ACQ.REASON_TRADE_REFUND_FEE_ERR', sub_msg: '退款金额无效' };
    const done = mode === 'normal' || (typeof mode === 'object' && 'systemError' in mode && mode.moved);
    if (mode === 'processing' || done) refunds.set(key, { amount: yuan(amount), done });
    // A trade refunded in full is closed.
    if (refunded(orderNo) === cents(trade.totalAmount)) trade.status = 'TRADE_CLOSED';
    if (typeof mode === 'object') return { ...FAIL, sub_code: 'ACQ.SYSTEM_ERROR', sub_msg: '系统错误' };
    const fundChange = done ? { fund_change: 'Y', gmt_refund_pay: '2024-05-02 10:00:00' } : { fund_change: 'N' };
    return { code: '10000', msg: 'Success', ...base, ...fundChange, refund_fee: yuan(refunded(orderNo)), send_back_fee: '0.00' };
  }

  /** alipay.trade.fastpay.refund.query: the refund's data with refund_status REFUND_SUCCESS once it is done, else none. */
  function refundQuery(biz: Record<string, unknown>, orderNo: string, trade: AlipayStandinTrade, tradeNo: string): Record<string, unknown> {
    if (typeof biz.out_request_no !== 'string' || biz.out_request_no === '') return { ...FAIL, sub_code: 'ACQ.INVALID_PARAMETER', sub_msg: '参数无效' };
    const r = refunds.get(`${orderNo} ${biz.out_request_no}`);
    if (!r?.done) return { code: '10000', msg: 'Success', ...r?.extra };
    return {
      code: '10000',
      msg: 'Success',
      out_request_no: biz.out_request_no,
      out_trade_no: orderNo,
      refund_amount: r.amount,
      refund_status: 'REFUND_SUCCESS',
      total_amount: trade.totalAmount,
      trade_no: tradeNo,
      ...r.extra,
    };
  }

  /** The request's checks in the gateway's order, then the business answer: the response member and its value. */
  function answer(params: Record<string, string>, signatureValid: boolean): [string, Record<string, unknown>] {
    const api = params.method;
    const key = api && METHODS.has(api) ? `${api.replace(/\./g, '_')}_response` : 'error_response';
    if (!api) return [key, GATEWAY('40001', 'isv.missing-method', '缺少方法名参数')];
    if (!params.app_id) return [key, GATEWAY('40001', 'isv.missing-app-id', '缺少AppID参数')];
    if (!params.sign) return [key, GATEWAY('40001', 'isv.missing-signature', '缺少签名参数')];
    if (params.sign_type !== 'RSA2') return [key, GATEWAY('40002', 'isv.invalid-signature-type', '无效的签名类型')];
    if (params.app_id !== appId) return [key, GATEWAY('40002', 'isv.invalid-app-id', '无效的AppID参数')];
    if (!/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/.test(params.timestamp ?? '')) return [key, GATEWAY('40002', 'isv.invalid-timestamp', '非法的时间戳参数')];
    if (!signatureValid) return [key, GATEWAY('40002', 'isv.invalid-signature', '验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配')];
    if (key === 'error_response') return [key, GATEWAY('40002', 'isv.invalid-method', '不存在的方法名')];
    let biz: Record<string, unknown>;
    try {
      biz = JSON.parse(params.biz_content ?? '') as Record<string, unknown>;
    } catch {
      biz = {};
    }
    const orderNo = biz?.out_trade_no;
    if (typeof orderNo !== 'string' || orderNo === '') return [key, { ...FAIL, sub_code: 'ACQ.INVALID_PARAMETER', sub_msg: '参数无效' }];
    const trade = trades.get(orderNo);
    const tradeNo = trade ? (trade.tradeNo ??= `2024050122001446870${String(++tradeSeq).padStart(9, '0')}`) : undefined;
    // A trade_no is looked up first and must be that trade's (Alipay prefers it to out_trade_no).
    if (!trade || (biz.trade_no !== undefined && biz.trade_no !== tradeNo))
      return [key, { ...FAIL, sub_code: 'ACQ.TRADE_NOT_EXIST', sub_msg: '交易不存在', out_trade_no: orderNo }];
    if (api === 'alipay.trade.refund') return [key, refund(biz, orderNo, trade, tradeNo!)];
    if (api === 'alipay.trade.fastpay.refund.query') return [key, refundQuery(biz, orderNo, trade, tradeNo!)];
    const outTradeNo = trade.outTradeNo ?? orderNo;
    if (api === 'alipay.trade.close') {
      // Only a trade still waiting for its buyer closes; a paid, finished or closed one is in a state that cannot.
      if (trade.status !== 'WAIT_BUYER_PAY') return [key, { ...FAIL, sub_code: 'ACQ.TRADE_STATUS_ERROR', sub_msg: '交易状态不合法' }];
      trade.status = 'TRADE_CLOSED';
      return [key, { code: '10000', msg: 'Success', out_trade_no: outTradeNo, trade_no: tradeNo }];
    }
    const paid = trade.status === 'TRADE_SUCCESS' || trade.status === 'TRADE_FINISHED';
    return [
      key,
      {
        code: '10000',
        msg: 'Success',
        buyer_logon_id: '159****5620',
        buyer_pay_amount: paid ? trade.totalAmount : '0.00',
        buyer_user_id: '2088101117955611',
        invoice_amount: paid ? trade.totalAmount : '0.00',
        out_trade_no: outTradeNo,
        point_amount: '0.00',
        receipt_amount: paid ? trade.totalAmount : '0.00',
        ...(paid ? { send_pay_date: '2024-05-01 12:00:05' } : {}),
        total_amount: trade.totalAmount,
        trade_no: tradeNo,
        trade_status: trade.status,
        ...(trade.transCurrency ? { trans_currency: trade.transCurrency } : {}),
        ...trade.extra,
      },
    ];
  }

  function handle(req: IncomingMessage, res: ServerResponse, body: string) {
    const url = new URL(req.url ?? '/', 'http://standin');
    if (req.method !== 'POST' || url.pathname !== '/gateway.do') return res.writeHead(404).end();
    const params: Record<string, string> = {};
    for (const [k, v] of url.searchParams) params[k] = v;
    for (const [k, v] of new URLSearchParams(body)) params[k] = v;
    let signatureValid: boolean;
    try {
      signatureValid = createVerify('RSA-SHA256')
        .update(alipayRequestContent(params), 'utf8')
        .verify(appPublicKey, params.sign ?? '', 'base64');
    } catch {
      signatureValid = false;
    }
    const [key, response] = answer(params, signatureValid);
    requests.push({ api: params.method, params, signatureValid, code: String(response.code), subCode: response.sub_code as string | undefined });
    const b = behaviourOf.get(params.method ?? '') ?? behaviour;
    if (b === 'hang') return;
    if (b === 'http-500') return res.writeHead(500, { 'content-type': 'text/html' }).end('<html><body>500 Internal Server Error</body></html>');
    const text =
      b === 'garbage'
        ? '<html>Service Unavailable</html>'
        : typeof b === 'object'
          ? b.body
          : alipayAnswerBody(key, response, b === 'unsigned' ? null : b === 'mis-signed' ? ALIPAY_STANDIN_KEYS.rogue.privateKey : platform.privateKey);
    res.writeHead(200, { 'content-type': 'text/html;charset=utf-8' }).end(text);
  }

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handle(req, res, Buffer.concat(chunks).toString('utf8')));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/gateway.do`,
    requests,
    /** What Alipay knows about `orderNo`; null: it has no such trade. */
    setTrade(orderNo: string, trade: AlipayStandinTrade | null) {
      if (trade) trades.set(orderNo, { ...trade });
      else trades.delete(orderNo);
    },
    trade: (orderNo: string): AlipayStandinTrade | undefined => trades.get(orderNo),
    /** For every method, or only for `api` (without it, also forgets the per-method ones). */
    setBehaviour(b: AlipayStandinBehaviour, api?: string) {
      if (api) behaviourOf.set(api, b);
      else {
        behaviour = b;
        behaviourOf.clear();
      }
    },
    setRefundMode(mode: AlipayRefundMode) {
      refundMode = mode;
    },
    /** The refund Alipay holds for `orderNo` and out_request_no `refundNo`. */
    refund: (orderNo: string, refundNo: string): AlipayStandinRefund | undefined => refunds.get(`${orderNo} ${refundNo}`),
    setRefund(orderNo: string, refundNo: string, refund: AlipayStandinRefund | null) {
      if (refund) refunds.set(`${orderNo} ${refundNo}`, { ...refund });
      else refunds.delete(`${orderNo} ${refundNo}`);
    },
    /** A `processing` refund is done: the money moved. */
    completeRefund(orderNo: string, refundNo: string) {
      const r = refunds.get(`${orderNo} ${refundNo}`);
      if (!r) throw new Error(`no refund ${refundNo} of ${orderNo}`);
      r.done = true;
      if (refunded(orderNo) === cents(trades.get(orderNo)!.totalAmount)) trades.get(orderNo)!.status = 'TRADE_CLOSED';
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export type AlipayStandin = Awaited<ReturnType<typeof startAlipayStandin>>;
