import { createSign, type KeyObject } from 'node:crypto';
import { request } from 'undici';
import { verifyRsa2 } from '../../callbacks/gateways/alipay-signature.ts';
import { excerptOf, GatewayCallError } from '../gateway-client.ts';

/*
 * One call to Alipay's OpenAPI gateway (gateway.do), written with undici and node:crypto rather than alipay-sdk:
 * the SDK's exec() takes no AbortSignal and reports a timeout, an HTTP status and a bad signature as one error class.
 */

export interface OpenApiTransport {
  gatewayUrl: string;
  appId: string;
  /** The app's private key (ALIPAY_PRIVATE_KEY): signs the requests. */
  privateKey: KeyObject;
  /** Alipay's public key (ALIPAY_PUBLIC_KEY): verifies the answers. */
  publicKey: KeyObject;
  timeoutMs: number;
}

export type AlipayResponse = Record<string, unknown>;

export const MAX_ANSWER_BYTES = 1_048_576;

/**
 * Answers Alipay may send unsigned (its Java SDK verifies a failed answer only when it carries a sign): the
 * gateway-level ones, 20000 (service unavailable), 40001 (missing arguments) and 40002 (invalid app id, signature,
 * …). Unverified, they only ever name an error, never a trade state.
 */
const UNSIGNED_GATEWAY_CODES = new Set(['20000', '40001', '40002']);

/** Alipay reads `timestamp` as Beijing time (UTC+8, no daylight saving). */
export function beijingTimestamp(now = new Date()): string {
  return new Date(now.getTime() + 8 * 3_600_000).toISOString().slice(0, 19).replace('T', ' ');
}

/** Alipay's request signing content: every parameter but sign (sign_type included), empty ones skipped, sorted, `k=v&…`. */
export function requestSigningContent(params: Record<string, string>): string {
  return Object.keys(params)
    .filter((k) => k !== 'sign' && params[k] !== '')
    .sort()
    .map((k) => `${k}=${params[k]}`)
    .join('&');
}

const str = (v: unknown, max = 200) => (typeof v === 'string' ? v.slice(0, max) : '');
const describe = (r: AlipayResponse) => {
  const sub = str(r.sub_code, 64);
  return `${str(r.code, 16)} ${str(r.msg)}${sub ? `, ${sub}${str(r.sub_msg) ? ` ${str(r.sub_msg)}` : ''}` : ''}`;
};

/** The error an answer with a code other than the ones a caller understands stands for. */
export function gatewayError(r: AlipayResponse, text: string, unsigned = false): GatewayCallError {
  const note = unsigned ? ' (unsigned answer)' : '';
  // Alipay's own failures (its documentation says: call again with the same parameters) leave the outcome unknown.
  if (r.code === '20000' || /^(ACQ|AQC)\.SYSTEM_ERROR$/.test(str(r.sub_code)) || str(r.sub_code).startsWith('isp.'))
    return new GatewayCallError('http_status', `Alipay failed${note}: ${describe(r)}`, excerptOf(text));
  // Missing or invalid arguments (app id, signature), no permission, bad auth token: our configuration, not the trade.
  const kind = ['20001', '40001', '40002', '40006'].includes(str(r.code)) ? 'not_configured' : 'refused';
  return new GatewayCallError(kind, `Alipay refused the request${note}: ${describe(r)}`, excerptOf(text));
}

const malformed = (message: string, text: string) => new GatewayCallError('malformed', message, excerptOf(text));
const aborted = () => new GatewayCallError('network', 'The call to Alipay was aborted');

/** Signs and sends `method` with `biz_content`; its verified `<method>_response` (or `error_response`) object and the answer's text. */
export async function callOpenApi(
  t: OpenApiTransport,
  method: string,
  biz: Record<string, string>,
  signal: AbortSignal,
): Promise<{ response: AlipayResponse; text: string }> {
  if (signal.aborted) throw aborted();
  const params: Record<string, string> = {
    app_id: t.appId,
    method,
    format: 'JSON',
    charset: 'utf-8',
    sign_type: 'RSA2',
    timestamp: beijingTimestamp(),
    version: '1.0',
    biz_content: JSON.stringify(biz),
  };
  params.sign = createSign('RSA-SHA256').update(requestSigningContent(params), 'utf8').sign(t.privateKey, 'base64');
  // The public parameters go in the URL and biz_content in the form body, as Alipay's SDKs send them.
  const url = new URL(t.gatewayUrl);
  const { biz_content: bizContent, ...system } = params;
  for (const [k, v] of Object.entries(system)) url.searchParams.set(k, v);
  const text = await post(url, new URLSearchParams({ biz_content: bizContent! }).toString(), method, t.timeoutMs, signal);
  return { response: verifiedResponse(text, method, t.publicKey), text };
}

async function post(url: URL, body: string, method: string, timeoutMs: number, signal: AbortSignal): Promise<string> {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  const onAbort = () => controller.abort();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    const res = await request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded;charset=utf-8', accept: 'application/json' },
      body,
      signal: controller.signal,
    });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      if ((size += chunk.length) > MAX_ANSWER_BYTES) break; // leaving the loop destroys the body
    }
    const bytes = Buffer.concat(chunks);
    if (res.statusCode < 200 || res.statusCode > 299)
      throw new GatewayCallError('http_status', `Alipay answered HTTP ${res.statusCode}`, excerptOf(bytes.toString('utf8', 0, 4096)));
    if (size > MAX_ANSWER_BYTES) throw malformed(`The answer is larger than ${MAX_ANSWER_BYTES} bytes`, bytes.toString('utf8', 0, 4096));
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      throw malformed('The answer is not UTF-8 text', bytes.toString('utf8', 0, 4096));
    }
  } catch (err) {
    if (err instanceof GatewayCallError) throw err;
    if (timedOut) throw new GatewayCallError('timeout', `Alipay did not answer ${method} within ${timeoutMs} ms`);
    if (signal.aborted) throw aborted();
    throw new GatewayCallError('network', `Alipay could not be reached: ${(err as Error).message}`);
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
  }
}

/** The `<method>_response` object once `sign` verifies over its raw text exactly as it stands in the body. */
function verifiedResponse(text: string, method: string, publicKey: KeyObject): AlipayResponse {
  const members = topLevelMembers(text);
  if (!members) throw malformed('The answer is not one JSON object with distinct members', text);
  const key = `${method.replace(/\./g, '_')}_response`;
  const raw = members.get(key) ?? members.get('error_response');
  if (raw === undefined) throw malformed(`The answer has no ${key}`, text);
  let response: unknown;
  try {
    response = JSON.parse(raw);
  } catch {
    throw malformed(`The ${key} member is not JSON`, text);
  }
  if (typeof response !== 'object' || response === null || Array.isArray(response)) throw malformed(`The ${key} member is not an object`, text);
  const r = response as AlipayResponse;
  const signRaw = members.get('sign');
  if (signRaw === undefined) {
    if (UNSIGNED_GATEWAY_CODES.has(str(r.code))) throw gatewayError(r, text, true);
    throw new GatewayCallError('bad_signature', `The answer of ${method} is not signed`, excerptOf(text));
  }
  let sign: unknown;
  try {
    sign = JSON.parse(signRaw);
  } catch {
    sign = undefined;
  }
  if (typeof sign !== 'string' || !verifyRsa2(raw, sign, publicKey))
    throw new GatewayCallError('bad_signature', `The answer of ${method} does not verify with ALIPAY_PUBLIC_KEY`, excerptOf(text));
  return r;
}

const WS = new Set([' ', '\t', '\n', '\r']);
const skipWs = (s: string, i: number) => {
  while (i < s.length && WS.has(s[i]!)) i++;
  return i;
};
/** The index after the string that starts at `i` (a `"`), or -1. */
function endOfString(s: string, i: number): number {
  for (let j = i + 1; j < s.length; j++) {
    if (s[j] === '\\') j++;
    else if (s[j] === '"') return j + 1;
  }
  return -1;
}
/** The index after the JSON value that starts at `i`, or -1; its content is checked later by JSON.parse. */
function endOfValue(s: string, i: number): number {
  if (s[i] === '"') return endOfString(s, i);
  if (s[i] !== '{' && s[i] !== '[') {
    let j = i;
    while (j < s.length && !WS.has(s[j]!) && !',}]'.includes(s[j]!)) j++;
    return j > i ? j : -1;
  }
  let depth = 0;
  for (let j = i; j < s.length; j++) {
    const c = s[j]!;
    if (c === '"') {
      j = endOfString(s, j) - 1;
      if (j < 0) return -1;
    } else if (c === '{' || c === '[') depth++;
    else if ((c === '}' || c === ']') && --depth === 0) return j + 1;
  }
  return -1;
}

/** The raw text of each member value of the top-level JSON object, by key; undefined unless it is one object whose keys are distinct. */
export function topLevelMembers(s: string): Map<string, string> | undefined {
  const out = new Map<string, string>();
  let i = skipWs(s, 0);
  if (s[i] !== '{') return undefined;
  i = skipWs(s, i + 1);
  if (s[i] === '}') return skipWs(s, i + 1) === s.length ? out : undefined;
  for (;;) {
    const keyEnd = s[i] === '"' ? endOfString(s, i) : -1;
    if (keyEnd < 0) return undefined;
    let key: string;
    try {
      key = JSON.parse(s.slice(i, keyEnd)) as string;
    } catch {
      return undefined;
    }
    i = skipWs(s, keyEnd);
    if (s[i] !== ':') return undefined;
    const start = skipWs(s, i + 1);
    const end = endOfValue(s, start);
    if (end < 0 || out.has(key)) return undefined;
    out.set(key, s.slice(start, end));
    i = skipWs(s, end);
    if (s[i] === '}') return skipWs(s, i + 1) === s.length ? out : undefined;
    if (s[i] !== ',') return undefined;
    i = skipWs(s, i + 1);
  }
}
