import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto';

/*
 * A local WeChat Pay API v3 (query by out_trade_no, close) written from WeChat's documentation, independently of the
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
 * `http-500`: SYSTEM_ERROR; `hang`: never answers.
 */
export type StandinBehaviour = 'normal' | 'mis-signed' | 'unsigned' | 'stale' | 'unknown-serial' | 'garbage' | 'http-500' | 'hang';

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
  const requests: StandinRequest[] = [];
  let behaviour: StandinBehaviour = 'normal';

  function answer(res: ServerResponse, status: number, payload: Record<string, unknown> | null) {
    let body = payload === null ? '' : JSON.stringify(payload);
    if (behaviour === 'garbage') [status, body] = [200, '<html><body>502 Bad Gateway</body></html>'];
    if (behaviour === 'http-500') [status, body] = [500, JSON.stringify({ code: 'SYSTEM_ERROR', message: '系统错误' })];
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

  function route(method: string, url: string, body: string, res: ServerResponse) {
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
