import type { KeyObject } from 'node:crypto';
import { alipayPrivateKey, alipayPublicKey } from '../../callbacks/gateways/gateway-keys.ts';
import { excerptOf, GatewayCallError, type GatewayClient, type QueryAnswer } from '../gateway-client.ts';
import { callOpenApi, gatewayError, type AlipayResponse, type OpenApiTransport } from './alipay-openapi.ts';
import { createAlipayRefundClient } from './alipay-refund.ts';

/** What the client needs: ALIPAY_APP_ID, ALIPAY_PRIVATE_KEY, ALIPAY_PUBLIC_KEY, ALIPAY_GATEWAY_URL, and the call's time limit. */
export interface AlipayClientOptions {
  appId: string;
  /** The app's private key that signs requests: PEM (PKCS#8 or PKCS#1) or the bare base64 of either. */
  privateKey: string | KeyObject;
  /** The Alipay public key (支付宝公钥) that verifies answers: PEM, bare base64 or certificate, as the callbacks accept it. */
  publicKey: string | KeyObject;
  /** Default https://openapi.alipay.com/gateway.do. */
  gatewayUrl?: string;
  timeoutMs: number;
}

const DEFAULT_GATEWAY = 'https://openapi.alipay.com/gateway.do';
// The notification adapter's rules (src/callbacks/gateways/alipay.ts), so a query and a callback of one payment agree.
const TRADE_NO = /^[\x21-\x7e]{1,64}$/;
const AMOUNT = /^\d{1,18}(\.\d{1,18})?$/;
const CURRENCY = /^[A-Z]{3}$/;
const UNPAID: Record<string, 'pending' | 'closed'> = { WAIT_BUYER_PAY: 'pending', TRADE_CLOSED: 'closed' };

const notConfigured = (message: string) => new GatewayCallError('not_configured', message);
const quoted = (v: unknown) => JSON.stringify(typeof v === 'string' ? v.slice(0, 64) : v);

function loadKey(name: string, value: string | KeyObject, type: 'private' | 'public', load: (text: string) => KeyObject): KeyObject {
  let key: KeyObject;
  try {
    key = typeof value === 'string' ? load(value) : value;
  } catch (err) {
    // loadAlipayPublicKey says what is wrong without the value; the private-key loader's messages are not ours to pass on.
    throw notConfigured(type === 'public' ? (err as Error).message : `${name} is not a usable RSA private key`);
  }
  if (key.type !== type || key.asymmetricKeyType !== 'rsa') throw notConfigured(`${name} is not a usable RSA ${type} key`);
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < 2048) throw notConfigured(`${name} is a ${bits}-bit RSA key; RSA2 keys are at least 2048 bits`);
  return key;
}

function transport(o: AlipayClientOptions): OpenApiTransport {
  const appId = o.appId.trim();
  if (!appId) throw notConfigured('ALIPAY_APP_ID is empty');
  const gatewayUrl = o.gatewayUrl ?? DEFAULT_GATEWAY;
  if (!URL.canParse(gatewayUrl) || !/^https?:$/.test(new URL(gatewayUrl).protocol)) throw notConfigured('ALIPAY_GATEWAY_URL must be an http(s) URL');
  if (!(o.timeoutMs > 0)) throw notConfigured('the gateway call timeout must be a positive number of milliseconds');
  const privateKey = loadKey('ALIPAY_PRIVATE_KEY', o.privateKey, 'private', alipayPrivateKey);
  const publicKey = loadKey('ALIPAY_PUBLIC_KEY', o.publicKey, 'public', alipayPublicKey);
  return { appId, gatewayUrl, privateKey, publicKey, timeoutMs: o.timeoutMs };
}

/** The state a verified alipay.trade.query answer gives `orderNo`. */
function queryAnswer({ response: r, text }: { response: AlipayResponse; text: string }, orderNo: string): QueryAnswer {
  const malformed = (message: string) => new GatewayCallError('malformed', message, excerptOf(text));
  if (typeof r.code !== 'string') throw malformed('The answer has no code');
  if (r.code === '40004' && r.sub_code === 'ACQ.TRADE_NOT_EXIST') {
    if (r.out_trade_no !== undefined && r.out_trade_no !== orderNo)
      throw malformed(`Alipay answered about out_trade_no ${quoted(r.out_trade_no)}, not the order asked`);
    return { state: 'not_found', gatewayStatus: 'ACQ.TRADE_NOT_EXIST', fields: r };
  }
  if (r.code !== '10000') throw gatewayError(r, text);
  const outTradeNo = r.out_trade_no;
  if (typeof outTradeNo !== 'string' || outTradeNo === '') throw malformed('out_trade_no is missing from the answer');
  const status = r.trade_status;
  if (status === 'TRADE_SUCCESS' || status === 'TRADE_FINISHED') {
    const problems: string[] = [];
    if (typeof r.trade_no !== 'string' || !TRADE_NO.test(r.trade_no)) problems.push('trade_no must be 1-64 printable ASCII characters');
    if (typeof r.total_amount !== 'string' || !AMOUNT.test(r.total_amount)) problems.push('total_amount must be a plain decimal such as 12.34');
    // Cross-border trades state the currency total_amount is in; domestic ones are CNY and say nothing.
    const currency = r.trans_currency === undefined || r.trans_currency === '' ? undefined : r.trans_currency;
    if (currency !== undefined && (typeof currency !== 'string' || !CURRENCY.test(currency))) problems.push('trans_currency must be an ISO 4217 code');
    if (problems.length > 0) throw malformed(problems.join('; '));
    return {
      state: 'paid',
      transactionId: r.trade_no as string,
      amount: { kind: 'decimal', value: r.total_amount as string },
      currency: currency as string | undefined,
      fields: r,
      // The answer carries no app id to compare; one about another order is flagged and changes nothing.
      ...(outTradeNo === orderNo ? {} : { mismatch: `out_trade_no ${quoted(outTradeNo)} is not the order asked` }),
    };
  }
  const state = typeof status === 'string' ? UNPAID[status] : undefined;
  if (!state) throw malformed(`trade_status ${quoted(String(status))} is not one Alipay documents`);
  if (outTradeNo !== orderNo) throw malformed(`Alipay answered about out_trade_no ${quoted(outTradeNo)}, not the order asked`);
  return { state, gatewayStatus: status as string, fields: r };
}

/**
 * Alipay's trade query and close (alipay.trade.query, alipay.trade.close) for the reconciler, and its refunds
 * (alipay-refund.ts): RSA2-signed requests with the app's private key, answers verified with the Alipay public key
 * before anything is read from them.
 */
export function createAlipayClient(options: AlipayClientOptions): GatewayClient {
  const t = transport(options);
  return {
    gateway: 'alipay',
    async query(target, signal) {
      return queryAnswer(await callOpenApi(t, 'alipay.trade.query', { out_trade_no: target.orderNo }, signal), target.orderNo);
    },
    async close(target, signal) {
      const { response: r, text } = await callOpenApi(t, 'alipay.trade.close', { out_trade_no: target.orderNo }, signal);
      if (r.out_trade_no !== undefined && r.out_trade_no !== target.orderNo)
        throw new GatewayCallError('malformed', `Alipay answered about out_trade_no ${quoted(r.out_trade_no)}, not the order asked`, excerptOf(text));
      // Closed now, or Alipay never had the trade (the buyer never opened the cashier): either way it cannot be paid.
      if (r.code === '10000' || (r.code === '40004' && r.sub_code === 'ACQ.TRADE_NOT_EXIST')) return { fields: r };
      if (r.code === '40004' && r.sub_code === 'ACQ.TRADE_STATUS_ERROR')
        throw new GatewayCallError(
          'refused',
          `Alipay will not close the trade: ACQ.TRADE_STATUS_ERROR ${String(r.sub_msg ?? '').slice(0, 200)}`.trim(),
          excerptOf(text),
        );
      throw gatewayError(r, text);
    },
    // The refund API takes the same app id and keys as the query: configured together.
    refunds: createAlipayRefundClient(t),
  };
}
