import { createPublicKey, createVerify, X509Certificate, type KeyObject } from 'node:crypto';
import { TextDecoder } from 'node:util';
import { isOrderNo } from '../../orders/order-number.ts';
import { flattenParams, type FlatParams } from '../params.ts';
import type { Rejection } from './gateway.ts';

/** What an Alipay merchant configures (ALIPAY_APP_ID, ALIPAY_PUBLIC_KEY). */
export interface AlipayConfig {
  appId: string;
  /** The Alipay public key (支付宝公钥), PEM or bare base64; or a key already loaded by loadAlipayPublicKey. */
  publicKey: string | KeyObject;
}

const PEM = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/;

/**
 * ALIPAY_PUBLIC_KEY as a KeyObject: a PEM public key (SPKI or PKCS#1), the bare base64 text the Alipay
 * console shows, or an Alipay public-key certificate (certificate mode). Throws a message that says what
 * is wrong; never echoes the value. Private keys are refused: pasting the app's own private key is the
 * usual mistake, and a public key derived from it could never verify Alipay's signature.
 */
export function loadAlipayPublicKey(text: string): KeyObject {
  // .env files often carry PEM newlines as a literal "\n".
  const value = text.replace(/\\n/g, '\n').trim();
  if (value === '') throw new Error('ALIPAY_PUBLIC_KEY is empty');
  let key: KeyObject;
  const pem = PEM.exec(value);
  try {
    if (pem) {
      const label = pem[1]!;
      if (label.includes('PRIVATE')) throw new Error('it is a private key; copy the Alipay public key (支付宝公钥) from the Alipay open platform instead');
      if (label === 'CERTIFICATE') key = new X509Certificate(pem[0]).publicKey;
      else key = createPublicKey(pem[0]);
    } else {
      const base64 = value.replace(/\s+/g, '');
      if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) throw new Error('it is neither a PEM block nor base64 text');
      const der = Buffer.from(base64, 'base64');
      key = tryDer(der);
    }
  } catch (err) {
    throw new Error(`ALIPAY_PUBLIC_KEY is not a usable RSA public key: ${(err as Error).message}`, { cause: err });
  }
  if (key.asymmetricKeyType !== 'rsa')
    throw new Error(`ALIPAY_PUBLIC_KEY is a ${key.asymmetricKeyType ?? 'non-RSA'} key; RSA2 needs the RSA Alipay public key`);
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < 2048) throw new Error(`ALIPAY_PUBLIC_KEY is a ${bits}-bit RSA key; RSA2 keys are at least 2048 bits`);
  return key;
}

function tryDer(der: Buffer): KeyObject {
  try {
    return createPublicKey({ key: der, format: 'der', type: 'spki' });
  } catch {
    try {
      return createPublicKey({ key: der, format: 'der', type: 'pkcs1' });
    } catch {
      throw new Error('the base64 text does not decode to an SPKI or PKCS#1 public key');
    }
  }
}

/** Alipay's signing content: every parameter but sign and sign_type, empty values skipped, sorted by key, `k=v&…`. */
export function alipaySigningContent(params: FlatParams): string {
  return Object.keys(params)
    .filter((k) => k !== 'sign' && k !== 'sign_type' && params[k] !== '')
    .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
    .map((k) => `${k}=${params[k]}`)
    .join('&');
}

export function verifyRsa2(content: string, signature: string, key: KeyObject): boolean {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(signature)) return false;
  try {
    return createVerify('RSA-SHA256').update(content, 'utf8').verify(key, signature, 'base64');
  } catch {
    return false;
  }
}

/**
 * Alipay posts form bodies in the charset the trade was created with (`charset` parameter). Routes decode
 * forms as UTF-8; for another charset (GBK, GB2312) the raw body is decoded again in that charset, so the
 * values are the ones Alipay signed. Returns undefined for UTF-8 or when there is no raw form body.
 */
export function redecodeForm(rawBody: Buffer | undefined, charset: string | undefined): Record<string, string[]> | 'unsupported' | undefined {
  const name = charset?.trim().toLowerCase();
  if (!rawBody || rawBody.length === 0 || !name || name === 'utf-8' || name === 'utf8') return undefined;
  let decoder: TextDecoder;
  try {
    decoder = new TextDecoder(name, { fatal: true });
  } catch {
    return 'unsupported';
  }
  const out: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
  try {
    for (const pair of rawBody.toString('latin1').split('&')) {
      if (pair === '') continue;
      const eq = pair.indexOf('=');
      const [k, v] = eq < 0 ? [pair, ''] : [pair.slice(0, eq), pair.slice(eq + 1)];
      const decode = (s: string) => decoder.decode(percentBytes(s.replace(/\+/g, ' ')));
      (out[decode(k)] ??= []).push(decode(v));
    }
  } catch {
    return 'unsupported';
  }
  return out;
}

function percentBytes(text: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const hex = text.slice(i + 1, i + 3);
    if (text[i] === '%' && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else bytes.push(text.charCodeAt(i) & 0xff);
  }
  return Buffer.from(bytes);
}

export type AlipayParamsCheck = { ok: true; params: FlatParams; fields: Record<string, string>; orderNo?: string } | { ok: false; rejection: Rejection };

/** The order number a request claims (`out_trade_no`), for the log even when nothing else is valid. */
export function claimedAlipayOrderNo(input: unknown): string | undefined {
  const value = typeof input === 'object' && input !== null ? (input as Record<string, unknown>).out_trade_no : undefined;
  return isOrderNo(value) ? value : undefined;
}

/**
 * The checks shared by the notify (POST /notify/alipay) and return (GET /callback/alipay) requests:
 * flat parameters, `sign_type` RSA2, the RSA2 signature, and `app_id`. Nothing about the trade itself,
 * since the return URL carries no trade_status. `fields` are the parameters minus `sign`.
 */
export function verifyAlipayParams(input: unknown, config: AlipayConfig, rawBody?: Buffer): AlipayParamsCheck {
  const key = typeof config.publicKey === 'string' ? loadAlipayPublicKey(config.publicKey) : config.publicKey;
  const claimed = claimedAlipayOrderNo(input);
  const reject = (verdict: Rejection['verdict'], code: Rejection['code'], message: string): AlipayParamsCheck => ({
    ok: false,
    rejection: { verdict, code, message, claimedOrderNo: claimed },
  });
  let flat = flattenParams(input);
  if (!flat.ok) return reject('malformed', 'validation_failed', flat.message);
  const redecoded = redecodeForm(rawBody, flat.params.charset);
  if (redecoded === 'unsupported')
    return reject('malformed', 'validation_failed', `charset ${JSON.stringify(flat.params.charset?.slice(0, 32))} is not supported`);
  if (redecoded) {
    flat = flattenParams(Object.fromEntries(Object.entries(redecoded).map(([k, v]) => [k, v.length === 1 ? v[0] : v])));
    if (!flat.ok) return reject('malformed', 'validation_failed', flat.message);
  }
  const params = flat.params;
  if (!params.sign) return reject('bad_signature', 'bad_signature', 'The sign parameter is missing');
  if (params.sign_type !== undefined && params.sign_type !== 'RSA2') return reject('malformed', 'validation_failed', 'sign_type must be RSA2');
  if (!verifyRsa2(alipaySigningContent(params), params.sign, key))
    return reject('bad_signature', 'bad_signature', 'The RSA2 signature does not match ALIPAY_PUBLIC_KEY');
  if (!params.app_id) return reject('malformed', 'validation_failed', 'app_id is missing');
  if (params.app_id !== config.appId)
    return reject('forbidden', 'forbidden', `app_id ${JSON.stringify(params.app_id.slice(0, 64))} is not this service's ALIPAY_APP_ID`);
  const { sign: _sign, ...fields } = params;
  const orderNo = isOrderNo(params.out_trade_no) ? params.out_trade_no : undefined;
  return { ok: true, params, fields, orderNo };
}
