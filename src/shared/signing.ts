import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** The heritage signature (also used for outbound notifications, A7). */
export const SIGN_TYPES = ['MD5', 'HMAC-SHA256'] as const;
export type SignType = (typeof SIGN_TYPES)[number];

export type SignableValue = string | number | boolean | null | undefined;

/** Parameter names S can carry: no `&` or `=`, so a name always ends at the first `=` of its pair. */
export const PARAM_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
/** `&name=` inside a value is the one sequence that lets it swallow a following pair of S (or pass for one). */
const SWALLOWED_PAIR = /&[A-Za-z0-9_.-]{1,64}=/;
export const swallowsPair = (value: string): boolean => SWALLOWED_PAIR.test(value);

/**
 * Why a parameter set could share its signing string with a different set, or undefined when it cannot.
 * With names limited to PARAM_NAME and no value holding `&name=`, S splits back into exactly one set
 * (`Tom & Jerry` and `a=b` stay valid). Every signed set, inbound or outbound, must pass this.
 */
export function ambiguityOf(params: Readonly<Record<string, SignableValue>>): string | undefined {
  for (const key of Object.keys(params)) {
    if (!PARAM_NAME.test(key)) return `parameter name ${JSON.stringify(key.slice(0, 64))} is not allowed`;
    const value = params[key];
    if (typeof value === 'string' && swallowsPair(value)) return `parameter ${key} must not contain "&" followed by a parameter name and "="`;
  }
  return undefined;
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** S: every parameter but `sign` with a non-empty value, sorted by key in byte order, `k=v&…&key=<secret>`. */
export function signingString(params: Readonly<Record<string, SignableValue>>, secret: string): string {
  const pairs = Object.keys(params)
    .filter((k) => k !== 'sign' && params[k] !== null && params[k] !== undefined && params[k] !== '')
    .sort(byteOrder)
    .map((k) => `${k}=${String(params[k])}`);
  return `${pairs.join('&')}&key=${secret}`;
}

export function computeSign(params: Readonly<Record<string, SignableValue>>, secret: string, signType: SignType): string {
  const s = signingString(params, secret);
  const digest = signType === 'MD5' ? createHash('md5').update(s, 'utf8') : createHmac('sha256', secret).update(s, 'utf8');
  return digest.digest('hex').toUpperCase();
}

/** Constant-time comparison of a presented signature (hex, any case) with the expected one. */
export function verifySign(params: Readonly<Record<string, SignableValue>>, secret: string, signType: SignType, presented: string): boolean {
  if (!/^[0-9A-Fa-f]+$/.test(presented)) return false; // hex only: Unicode case folding must not help
  const expected = Buffer.from(computeSign(params, secret, signType), 'utf8');
  const given = Buffer.from(presented.toUpperCase(), 'utf8');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

export function isSignType(value: string): value is SignType {
  return (SIGN_TYPES as readonly string[]).includes(value);
}
