import { Agent, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import { brotliCompressSync, brotliDecompressSync, deflateSync, gunzipSync, gzipSync, inflateSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeServer, createServer, listen } from '../src/server.ts';
import { createTestContext, TEST_API_KEY, TEST_GATEWAY_SECRET, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';
import { gatewaySign, nowSeconds } from './helpers/gateway-signer.ts';

/**
 * Hostile input, part 2 (issue 7 item 3): random requests through the real HTTP stack (src/server.ts + the app)
 * on every engine. Invariants: never a 500 (or any status outside the documented ones), never a hang, no order
 * changes unless the request carried a valid A5 signature over what it actually sent, orders are created only
 * with 201, and Object.prototype is never polluted. PROPERTY_HTTP_RUNS scales the runs (default 200 each).
 */
const RUNS = Number(process.env.PROPERTY_HTTP_RUNS ?? 200);
// A failure prints its seed; FC_SEED=<seed> replays that run.
if (process.env.FC_SEED) fc.configureGlobal({ seed: Number(process.env.FC_SEED) });
const CALLBACK_STATUSES = new Set([200, 400, 401, 403, 404, 409, 413, 415]);
const ORDER_STATUSES = new Set([200, 201, 400, 409, 413, 415]);
const REQUEST_TIMEOUT_MS = 10_000;
/** Per-test budget: generous per run (MariaDB is slower), so raising PROPERTY_HTTP_RUNS needs no other change. */
const TEST_TIMEOUT_MS = 30_000 + RUNS * 250;

// ---------------------------------------------------------------------------------------------------------
// A raw HTTP client: exact bytes and headers (supertest would serialise bodies and default the Content-Type)
// ---------------------------------------------------------------------------------------------------------

interface Wire {
  method: 'GET' | 'POST';
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
}
interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

function send(port: number, agent: Agent, wire: Wire): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...wire.headers };
    if (wire.body) headers['Content-Length'] = wire.body.length;
    const req = httpRequest({ host: '127.0.0.1', port, method: wire.method, path: wire.path, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error(`HANG: no answer within ${REQUEST_TIMEOUT_MS} ms to ${wire.method} ${wire.path}`)));
    req.on('error', reject);
    req.end(wire.body);
  });
}

const describeWire = (w: Wire) =>
  `${w.method} ${w.path.slice(0, 300)} ${JSON.stringify(w.headers)} body=${w.body ? JSON.stringify(w.body.toString('utf8').slice(0, 300)) : '-'}`;

// ---------------------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------------------

interface Seed {
  order_no: string;
  amount: string;
  currency: string;
}
const SEEDED: Seed[] = [
  { order_no: 'PROP-CNY-1', amount: '12.34', currency: 'CNY' },
  { order_no: 'PROP-CNY-2', amount: '0.01', currency: 'CNY' },
  { order_no: 'PROP-JPY-1', amount: '500', currency: 'JPY' },
  { order_no: 'PROP-USD-1', amount: '99.99', currency: 'USD' },
  { order_no: 'PROP-KWD-1', amount: '1.234', currency: 'KWD' },
];
/** Orders named `PROP-F-…` are created (pending, 12.34 CNY) just before their request, so state changes stay possible. */
const FRESH = { amount: '12.34', currency: 'CNY' };

const SPECIAL = [
  '&',
  '=',
  '%',
  '+',
  ' ',
  '%2B',
  '%zz',
  '%E0%A4',
  '😀',
  '中文',
  '\u0000',
  '\n',
  '"',
  '<script>',
  '#',
  '?',
  '\\',
  '&key=',
  'sign=',
  '\uFEFF',
  '\uFFFD',
];
const hostileString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 16 }),
  fc.string({ unit: 'grapheme', maxLength: 8 }),
  fc.array(fc.constantFrom(...SPECIAL), { maxLength: 6 }).map((p) => p.join('')),
  fc.constantFrom('', ' ', 'null', 'undefined', 'NaN', '-0', '1e999', '9'.repeat(40), 'x'.repeat(2000)),
);
const hostileKey = fc.oneof(
  fc.constantFrom(
    '__proto__',
    'constructor',
    'prototype',
    '__proto__[polluted]',
    'constructor[prototype][polluted]',
    'a[]',
    'a[b]',
    'toString',
    'hasOwnProperty',
    'lang',
  ),
  fc.constantFrom('order_no', 'amount', 'status', 'sign', 'sign_type', 'transaction_id', 'currency', 'timestamp', 'nonce'),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 10 }),
  fc.stringMatching(/^[A-Za-z0-9_.-]{1,12}$/),
);
const alnum = (min: number, max: number) => fc.stringMatching(new RegExp(`^[A-Za-z0-9]{${min},${max}}$`));

type SignMode = 'valid' | 'none' | 'empty' | 'random' | 'wrong-secret' | 'other-type' | 'tampered';

const safeExtra = fc.tuple(
  fc.constantFrom('attach', 'memo', 'body', 'extra.info', 'x-y_z'),
  fc.oneof(fc.constantFrom('a=b&c', '中文 + 空格', '100%', '', ' ', '😀', 'x'.repeat(3000)), fc.string({ maxLength: 20 })),
);

/**
 * The logical fields of a generic-gateway callback, as ordered pairs (duplicates possible), with a `sign`.
 * `clean` payments are well-formed and mostly correctly signed (so state changes happen); the others are hostile.
 */
const paymentArbOf = (clean: boolean) =>
  fc
    .record({
      order: fc.oneof(
        { weight: 5, arbitrary: fc.constantFrom(...SEEDED.map((s) => s.order_no)) },
        { weight: 4, arbitrary: alnum(6, 10).map((s) => `PROP-F-${s}`) },
        { weight: clean ? 0 : 1, arbitrary: fc.oneof(fc.constant('NO-SUCH-ORDER'), hostileString) },
      ),
      txId: clean
        ? fc.oneof(
            fc.constantFrom('TX-1', 'TX-2'),
            alnum(1, 20).map((s) => `TX-${s}`),
          )
        : fc.oneof(fc.constantFrom('TX-1', 'TX-2'), hostileString),
      amount: fc.oneof(
        { weight: 6, arbitrary: fc.constant<'correct'>('correct') },
        { weight: clean ? 0 : 1, arbitrary: fc.constantFrom('0.01', '12.340', '012.34', '1e3', '-12.34', '12,34', '99999999999999999999', '0', '') },
        { weight: clean ? 0 : 1, arbitrary: hostileString },
      ),
      currency: fc.oneof(
        { weight: 4, arbitrary: fc.constant<'absent'>('absent') },
        { weight: 3, arbitrary: fc.constant<'correct'>('correct') },
        { weight: clean ? 0 : 1, arbitrary: fc.constantFrom('USD', 'cny', 'XXX', '') },
      ),
      status: fc.oneof(
        { weight: 6, arbitrary: fc.constantFrom('success', 'failed') },
        { weight: clean ? 0 : 1, arbitrary: fc.oneof(fc.constantFrom('paid', 'SUCCESS', ''), hostileString) },
      ),
      timestamp: fc.oneof(
        { weight: 3, arbitrary: fc.constant<'absent'>('absent') },
        { weight: 3, arbitrary: fc.constant<'now'>('now') },
        { weight: clean ? 0 : 1, arbitrary: fc.constantFrom('0', '99999999999', 'yesterday', '', String(Math.floor(Date.now() / 1000) - 301)) },
      ),
      nonce: fc.option(alnum(1, 16), { nil: undefined }),
      signType: fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom<string | undefined>(undefined, 'MD5', 'HMAC-SHA256') },
        { weight: clean ? 0 : 1, arbitrary: fc.constantFrom('md5', 'SHA1', '') },
      ),
      extras: clean
        ? fc.array(safeExtra, { maxLength: 2 })
        : fc.oneof({ weight: 1, arbitrary: fc.constant([]) }, { weight: 2, arbitrary: fc.array(fc.tuple(hostileKey, hostileString), { maxLength: 5 }) }),
      signMode: fc.oneof(
        { weight: clean ? 8 : 3, arbitrary: fc.constant<SignMode>('valid') },
        { weight: clean ? 2 : 6, arbitrary: fc.constantFrom<SignMode>('none', 'empty', 'random', 'wrong-secret', 'other-type', 'tampered') },
      ),
      randomSign: fc.string({ unit: fc.constantFrom(...'0123456789ABCDEFabcdef'), minLength: 32, maxLength: 64 }),
    })
    .map((g) => {
      const seed = SEEDED.find((s) => s.order_no === g.order) ?? (g.order.startsWith('PROP-F-') ? { order_no: g.order, ...FRESH } : undefined);
      const pairs: Array<[string, string]> = [
        ['order_no', g.order],
        ['transaction_id', g.txId],
        ['amount', g.amount === 'correct' ? (seed?.amount ?? '12.34') : g.amount],
        ['status', g.status],
      ];
      if (g.currency !== 'absent') pairs.push(['currency', g.currency === 'correct' ? (seed?.currency ?? 'CNY') : g.currency]);
      if (g.timestamp !== 'absent') pairs.push(['timestamp', g.timestamp === 'now' ? nowSeconds() : g.timestamp]);
      if (g.nonce !== undefined) pairs.push(['nonce', `n-${g.nonce}`]);
      if (g.signType !== undefined) pairs.push(['sign_type', g.signType]);
      pairs.push(...(g.extras as Array<[string, string]>).filter(([k]) => k !== 'sign'));
      const map = Object.fromEntries(pairs);
      const type = map.sign_type === 'HMAC-SHA256' ? 'HMAC-SHA256' : 'MD5';
      let sign: string | undefined;
      switch (g.signMode) {
        case 'valid':
          sign = gatewaySign(map, TEST_GATEWAY_SECRET, type);
          break;
        case 'empty':
          sign = '';
          break;
        case 'random':
          sign = g.randomSign;
          break;
        case 'wrong-secret':
          sign = gatewaySign(map, `${TEST_GATEWAY_SECRET}x`, type);
          break;
        case 'other-type':
          sign = gatewaySign(map, TEST_GATEWAY_SECRET, type === 'MD5' ? 'HMAC-SHA256' : 'MD5');
          break;
        case 'tampered':
          sign = gatewaySign(map, TEST_GATEWAY_SECRET, type);
          pairs[2] = ['amount', `${pairs[2]![1]}1`];
          break;
        case 'none':
          break;
      }
      if (sign !== undefined) pairs.push(['sign', sign]);
      return { pairs, fresh: g.order.startsWith('PROP-F-') ? g.order : undefined };
    });

const enc = encodeURIComponent;
const formText = (pairs: Array<[string, string]>, plus: boolean) =>
  plus ? new URLSearchParams(pairs).toString() : pairs.map(([k, v]) => `${enc(k)}=${enc(v)}`).join('&');
/** Raw JSON values put in place of one field: nested objects, arrays, prototype keys, huge and odd number literals. */
const NESTED = [
  '{"v":"1"}',
  '["1","2"]',
  '[]',
  '{}',
  'true',
  'false',
  'null',
  '{"__proto__":{"polluted":1}}',
  '{"constructor":{"prototype":{"polluted":1}}}',
  '1e308',
  '-0',
  '12.34',
  '12.340',
  '123456789012345678901234567890',
  '1e999',
  '-1e-999',
  '1E2',
  '0.1e1',
  '9007199254740993',
];
/** JSON text written by hand so duplicate keys survive; numeric-looking values sometimes as number literals. */
function jsonText(pairs: Array<[string, string]>, numbers: boolean, nestAt: number | undefined, nested: string): string {
  const members = pairs.map(([k, v], i) => {
    const value = i === nestAt ? nested : numbers && /^\d{1,15}(\.\d{1,6})?$/.test(v) && !/^0\d/.test(v) ? v : JSON.stringify(v);
    return `${JSON.stringify(k)}:${value}`;
  });
  return `{${members.join(',')}}`;
}

const TEXT_GARBAGE = [
  '%',
  '%zz',
  '%E0%A4',
  '%C0%80',
  '&&&',
  '==',
  '\u0000',
  '😀',
  '{',
  '}',
  '[',
  '"',
  '\\',
  '\uFFFF',
  '%00',
  'a[]=1&a[]=2',
  '__proto__[polluted]=1',
  '{"__proto__":{"polluted":1}}',
];
type Mutation = { kind: 'none' } | { kind: 'truncate'; at: number } | { kind: 'insert'; at: number; text: string } | { kind: 'pad' } | { kind: 'many' };
const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 12, arbitrary: fc.constant({ kind: 'none' as const }) },
  { weight: 2, arbitrary: fc.nat().map((at) => ({ kind: 'truncate' as const, at })) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.nat(), fc.oneof(fc.constantFrom(...TEXT_GARBAGE), fc.string({ unit: 'binary', maxLength: 4 })))
      .map(([at, text]) => ({ kind: 'insert' as const, at, text })),
  },
  { weight: 1, arbitrary: fc.constantFrom({ kind: 'pad' as const }, { kind: 'many' as const }) },
);
function mutate(text: string, m: Mutation, json: boolean): string {
  switch (m.kind) {
    case 'none':
      return text;
    case 'truncate':
      return text.slice(0, m.at % (text.length + 1));
    case 'insert': {
      const at = m.at % (text.length + 1);
      return text.slice(0, at) + m.text + text.slice(at);
    }
    case 'pad': // past the 64 KiB limit
      return json ? `${text.slice(0, -1)},"pad":"${'x'.repeat(70 * 1024)}"}` : `${text}&pad=${'x'.repeat(70 * 1024)}`;
    case 'many': // past params.ts's 100 and the body parser's 256 parameters
      return json
        ? `${text.slice(0, -1)},${Array.from({ length: 300 }, (_, i) => `"k${i}":"v"`).join(',')}}`
        : `${text}&${Array.from({ length: 300 }, (_, i) => `k${i}=v`).join('&')}`;
  }
}

const FORM = 'application/x-www-form-urlencoded';
const CONTENT_TYPES = [
  `${FORM}; charset=utf-8`,
  `${FORM}; charset=iso-8859-1`,
  `${FORM}; charset=latin1`,
  `${FORM}; charset=koi8-r`,
  `${FORM}; charset=nope`,
  'application/json; charset=utf-8',
  'application/json; charset=utf-16',
  'application/json; charset=utf-32',
  'application/json; charset=ascii',
  'application/vnd.api+json',
  'application/merge-patch+json',
  'APPLICATION/JSON',
  'text/plain',
  'text/html',
  'multipart/form-data; boundary=----x',
  'application/octet-stream',
  'application/xml',
  '*/*',
  'garbage',
  '',
  ';',
  'application/json; charset="',
  'application/json;;;',
  `${FORM}, application/json`,
  `${FORM}; boundary=x; charset=utf-8; q=1`,
  'application/x-www-form-urlencoded ',
  ' application/json',
];
type BodyEncoding = 'form' | 'form-plus' | 'json' | 'json-numbers' | 'json-nested';
/** Content-Encoding: valid compressed bodies, a gzip header on a body that is not gzip, unknown codings (415) and lists. */
const CONTENT_ENCODINGS = [undefined, 'identity', 'gzip', 'gzip-garbage', 'deflate', 'br', 'GZIP', 'x-unknown', 'gzip, identity', 'compress'] as const;
type ContentEncoding = (typeof CONTENT_ENCODINGS)[number];

function encodeBody(text: string, encoding: ContentEncoding): { body: Buffer; header?: string } {
  const raw = Buffer.from(text, 'utf8');
  switch (encoding) {
    case undefined:
      return { body: raw };
    case 'gzip':
    case 'GZIP':
      return { body: gzipSync(raw), header: encoding };
    case 'deflate':
      return { body: deflateSync(raw), header: encoding };
    case 'br':
      return { body: brotliCompressSync(raw), header: encoding };
    case 'gzip-garbage':
      return { body: raw, header: 'gzip' };
    default:
      return { body: raw, header: encoding };
  }
}

const TARGETS = [
  'POST /notify',
  'POST /notify/generic',
  'POST /notify.php',
  'GET /callback',
  'GET /callback/generic',
  'GET /callback.php',
  'POST /callback',
  'POST /callback/generic',
] as const;

const wireKnobsOf = (clean: boolean) =>
  fc.record({
    payment: paymentArbOf(clean),
    target: fc.constantFrom(...TARGETS),
    bodyEncoding: clean
      ? fc.constantFrom<BodyEncoding>('form', 'form-plus', 'json', 'json-numbers')
      : fc.constantFrom<BodyEncoding>('form', 'form-plus', 'json', 'json-numbers', 'json-nested'),
    nestAt: fc.nat(),
    nested: fc.constantFrom(...NESTED),
    mutation: clean ? fc.constant<Mutation>({ kind: 'none' }) : mutationArb,
    contentType: clean
      ? fc.constant<'matching'>('matching')
      : fc.oneof(
          { weight: 3, arbitrary: fc.constant<'matching'>('matching') },
          { weight: 1, arbitrary: fc.constant<'none'>('none') },
          { weight: 4, arbitrary: fc.constantFrom(...CONTENT_TYPES) },
        ),
    contentEncoding: fc.oneof(
      { weight: 8, arbitrary: fc.constant(undefined) },
      { weight: 2, arbitrary: clean ? fc.constantFrom('identity', 'gzip', 'deflate', 'br') : fc.constantFrom(...CONTENT_ENCODINGS) },
    ),
    accept: fc.constantFrom(undefined, 'text/html', 'application/json', '*/*', 'text/html;q=0.1, application/json'),
    lang: clean ? fc.constant(undefined) : fc.option(fc.constantFrom('en', 'zh-CN', 'xx', ''), { nil: undefined, freq: 3 }),
  });

/** Half well-formed traffic (correctly signed most of the time), half hostile. */
const callbackWireArb = fc.oneof(wireKnobsOf(true), wireKnobsOf(false)).map((g): { wire: Wire; fresh?: string } => {
  const [method, path] = g.target.split(' ') as ['GET' | 'POST', string];
  const headers: Record<string, string> = {};
  if (g.accept) headers.Accept = g.accept;
  const json = method === 'POST' && g.bodyEncoding.startsWith('json');
  if (method === 'GET') {
    let query = mutate(
      formText(g.payment.pairs, g.bodyEncoding === 'form-plus'),
      g.mutation.kind === 'pad' || g.mutation.kind === 'many' ? { kind: 'none' } : g.mutation,
      false,
    );
    if (g.lang !== undefined) query += `&lang=${g.lang}`;
    // Request targets can only carry bytes 0x21-0x7e (Node refuses the rest client-side): escape the remainder.
    query = query.replace(/[^\x21-\x7e]/gu, (c) => enc(c));
    return { wire: { method, path: `${path}?${query.slice(0, 6000)}`, headers }, fresh: g.payment.fresh };
  }
  const text = json
    ? jsonText(g.payment.pairs, g.bodyEncoding === 'json-numbers', g.bodyEncoding === 'json-nested' ? g.nestAt % g.payment.pairs.length : undefined, g.nested)
    : formText(g.payment.pairs, g.bodyEncoding === 'form-plus');
  const contentType = g.contentType === 'matching' ? (json ? 'application/json' : FORM) : g.contentType;
  if (contentType !== 'none') headers['Content-Type'] = contentType;
  const { body, header } = encodeBody(mutate(text, g.mutation, json), g.contentEncoding);
  if (header) headers['Content-Encoding'] = header;
  return { wire: { method, path: g.lang === undefined ? path : `${path}?lang=${enc(g.lang)}`, headers, body }, fresh: g.payment.fresh };
});

// ---------------------------------------------------------------------------------------------------------
// The oracle: did the request carry a valid A5 signature over some decoding of what it actually sent?
// ---------------------------------------------------------------------------------------------------------

function decompress(body: Buffer, coding: string | undefined): Buffer | undefined {
  try {
    switch ((coding ?? 'identity').toLowerCase()) {
      case 'identity':
        return body;
      case 'gzip':
        return gunzipSync(body);
      case 'deflate':
        return inflateSync(body);
      case 'br':
        return brotliDecompressSync(body);
      default:
        return undefined;
    }
  } catch {
    return undefined;
  }
}

/** Every flat string map the request could be read as: form body, JSON body, query string (each with and without `lang`). */
function candidateParams(wire: Wire): Array<Record<string, string>> {
  const out: Array<Array<[string, string]>> = [];
  const query = wire.path.includes('?') ? wire.path.slice(wire.path.indexOf('?') + 1) : '';
  out.push([...new URLSearchParams(query)]);
  const body = wire.body ? decompress(wire.body, wire.headers['Content-Encoding']) : undefined;
  if (body) {
    const text = body.toString('utf8');
    out.push([...new URLSearchParams(text)]);
    try {
      const parsed = JSON.parse(text) as unknown;
      if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
        const entries = Object.entries(parsed as Record<string, unknown>);
        if (entries.every(([, v]) => typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v)))) out.push(entries.map(([k, v]) => [k, String(v)]));
      }
    } catch {
      // not JSON
    }
  }
  const maps: Array<Record<string, string>> = [];
  for (const entries of out) {
    if (new Set(entries.map(([k]) => k)).size !== entries.length) continue; // repeated keys are never a valid request
    const map = Object.fromEntries(entries);
    maps.push(map);
    if ('lang' in map) maps.push(Object.fromEntries(entries.filter(([k]) => k !== 'lang')));
  }
  return maps;
}

function validlySigned(wire: Wire): { orderNo: string } | undefined {
  for (const map of candidateParams(wire)) {
    const type = map.sign_type ?? 'MD5';
    if (!map.sign || (type !== 'MD5' && type !== 'HMAC-SHA256')) continue;
    if (gatewaySign(map, TEST_GATEWAY_SECRET, type) === map.sign.toUpperCase()) return { orderNo: map.order_no ?? '' };
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------
// Orders API bodies
// ---------------------------------------------------------------------------------------------------------

/** Well-formed orders (so 201, 200 and 409 happen), each field optional. */
const cleanOrderFieldsArb = fc
  .record(
    {
      order_no: fc.oneof(
        fc.constantFrom('PROP-API-1', 'PROP-API-2'),
        alnum(8, 20).map((s) => `PROP-API-${s}`),
      ),
      money: fc.constantFrom(['12.34', 'CNY'], ['0.5', 'USD'], ['500', 'JPY'], ['1.234', 'KWD'], [5, 'CNY'], [12.5, 'EUR']),
      payment_method: fc.constantFrom('generic', 'sandbox', 'alipay', 'wechatpay', 'stripe'),
      subject: fc.string({ unit: 'grapheme', maxLength: 40 }),
      callback_url: fc.constantFrom('https://merchant.example/return?a=1&b=2', 'http://127.0.0.1:8080/r'),
      notify_url: fc.constant('https://merchant.example/notify'),
      metadata: fc.dictionary(alnum(1, 8), fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.boolean(), fc.constant(null)), { maxKeys: 5 }),
    },
    { requiredKeys: ['money'] },
  )
  .map(({ money, ...rest }) => ({ ...rest, amount: money[0], currency: money[1] }) as Record<string, unknown>);

const orderFieldsArb = fc.record(
  {
    order_no: fc.oneof(fc.constantFrom('PROP-API-1', 'PROP-API-2', '__proto__', 'constructor', '', 'a'.repeat(65), '../x'), alnum(1, 20), hostileString),
    amount: fc.oneof(
      fc.constantFrom<unknown>(
        '12.34',
        '0.01',
        '1',
        '12.345',
        '0',
        '-1',
        '1e3',
        '１２',
        '12.',
        '.5',
        '99999999999999999999',
        12.34,
        5,
        -0,
        0,
        1e21,
        1e308,
        0.1 + 0.2,
        2 ** 64,
        null,
        true,
        [],
        {},
      ),
      fc.stringMatching(/^\d{1,20}(\.\d{1,20})?$/),
      fc.double(),
      hostileString,
    ),
    currency: fc.oneof(fc.constantFrom<unknown>('CNY', 'USD', 'JPY', 'KWD', 'XXX', 'cny', '', 'CNYY', 1, null), hostileString),
    payment_method: fc.oneof(fc.constantFrom<unknown>('generic', 'sandbox', 'alipay', 'stripe', 'paypal', '', null), hostileString),
    subject: fc.oneof(hostileString, fc.string({ unit: 'grapheme', maxLength: 300 }), fc.constantFrom<unknown>(1, null, ['a'])),
    callback_url: fc.oneof(
      fc.constantFrom<unknown>(
        'https://merchant.example/return',
        'javascript:alert(1)',
        'http://',
        'ftp://x',
        `https://x.example/${'a'.repeat(3000)}`,
        'https://例え.jp/パス',
        1,
      ),
      hostileString,
    ),
    notify_url: fc.oneof(fc.webUrl(), fc.constantFrom<unknown>('http://127.0.0.1:1/', 'data:,x', '//x')),
    metadata: fc.oneof(
      fc.dictionary(fc.oneof(hostileKey, alnum(1, 8)), fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.boolean(), fc.constant(null)), { maxKeys: 8 }),
      fc.dictionary(alnum(1, 8), fc.string({ maxLength: 2 }), { minKeys: 51, maxKeys: 60 }),
      fc.jsonValue({ maxDepth: 3 }),
    ),
  },
  { requiredKeys: [] },
);
const orderKnobsOf = (clean: boolean) =>
  fc.record({
    fields: clean ? cleanOrderFieldsArb : orderFieldsArb,
    extras: clean ? fc.constant([]) : fc.array(fc.tuple(hostileKey, fc.jsonValue({ maxDepth: 2 })), { maxLength: 3 }),
    protoInjection: clean
      ? fc.constant(undefined)
      : fc.constantFrom(undefined, '"__proto__":{"polluted":1,"amount":"1"}', '"constructor":{"prototype":{"polluted":1}}', '"__proto__":null'),
    /** A raw number literal (or nested value) appended as a second "amount": duplicate keys, last one wins. */
    rawAmount: clean ? fc.constant(undefined) : fc.option(fc.constantFrom(...NESTED, '1.5', '0.000', '00012.34'), { nil: undefined, freq: 3 }),
    form: fc.boolean(),
    mutation: clean ? fc.constant<Mutation>({ kind: 'none' }) : mutationArb,
    contentType: clean
      ? fc.constant<'matching'>('matching')
      : fc.oneof(
          { weight: 4, arbitrary: fc.constant<'matching'>('matching') },
          { weight: 1, arbitrary: fc.constant<'none'>('none') },
          { weight: 3, arbitrary: fc.constantFrom(...CONTENT_TYPES) },
        ),
    contentEncoding: fc.oneof(
      { weight: 8, arbitrary: fc.constant(undefined) },
      { weight: 1, arbitrary: clean ? fc.constantFrom('gzip', 'br') : fc.constantFrom(...CONTENT_ENCODINGS) },
    ),
  });

const orderWireArb = fc.oneof(orderKnobsOf(true), orderKnobsOf(false)).map((g): Wire => {
  const fields = { ...g.fields };
  if (g.form) delete fields.metadata; // metadata is accepted in JSON bodies only (A4)
  const entries: Array<[string, unknown]> = [...Object.entries(fields), ...(g.extras as Array<[string, unknown]>)];
  let text: string;
  if (g.form) {
    text = entries.map(([k, v]) => `${enc(k)}=${enc(typeof v === 'string' ? v : (JSON.stringify(v) ?? ''))}`).join('&');
  } else {
    const members = entries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v) ?? 'null'}`);
    if (g.protoInjection) members.unshift(g.protoInjection);
    if (g.rawAmount !== undefined) members.push(`"amount":${g.rawAmount}`);
    text = `{${members.join(',')}}`;
  }
  const headers: Record<string, string> = { 'X-API-Key': TEST_API_KEY };
  const contentType = g.contentType === 'matching' ? (g.form ? FORM : 'application/json') : g.contentType;
  if (contentType !== 'none') headers['Content-Type'] = contentType;
  const { body, header } = encodeBody(mutate(text, g.mutation, !g.form), g.contentEncoding);
  if (header) headers['Content-Encoding'] = header;
  return { method: 'POST', path: '/api/orders', headers, body };
});

// ---------------------------------------------------------------------------------------------------------
// API paths and query strings (order numbers in the path, list filters, the seed-compatible query API)
// ---------------------------------------------------------------------------------------------------------

/** Path segments, malformed percent-escapes included (they must be a 400, never a 500). */
const segmentArb = fc.oneof(
  fc.constantFrom(
    '%zz',
    '%E0%A4',
    '%',
    ...SEEDED.map((s) => s.order_no),
    'NO-SUCH-ORDER',
    '__proto__',
    'constructor',
    'prototype',
    '..',
    '.',
    '%2e%2e',
    '%2F',
    'a%2Fb',
    '%00',
    'x'.repeat(300),
  ),
  alnum(1, 20),
  hostileString.filter((v) => v !== '').map(enc),
);
const queryKeyArb = fc.oneof(
  fc.constantFrom('status', 'from', 'to', 'page', 'limit', 'cursor', 'action', 'order_no', 'start_time', 'end_time', 'lang'),
  fc.constantFrom('status[]', 'limit[a]', '__proto__', '__proto__[polluted]', 'constructor[prototype][polluted]', 'page[]'),
  hostileKey,
);
const queryValueArb = fc.oneof(
  fc.constantFrom(
    'pending',
    'paid',
    'closed',
    '1',
    '100',
    '101',
    '0',
    '-1',
    '1.5',
    '2026-01-01',
    '2026-02-30T25:00:00Z',
    '1700000000',
    '99999999999999',
    '1e400',
    'status',
    'detail',
    'list',
    'eyJ4IjoxfQ',
    'WyIyMDI2LTAxLTAxIDAwOjAwOjAwLjAwMCIsMV0',
  ),
  ...SEEDED.map((s) => fc.constant(s.order_no)),
  hostileString,
);
const apiWireArb = fc
  .record({
    target: fc.constantFrom(
      'GET /api/orders/:no',
      'POST /api/orders/:no/close',
      'POST /api/orders/:no/notifications/resend',
      'GET /api/orders',
      'GET /query_order',
      'GET /query_order.php',
      'GET /sandbox/pay/:no',
    ),
    segment: segmentArb,
    query: fc.array(fc.tuple(queryKeyArb, queryValueArb), { maxLength: 6 }),
    rawQuery: fc.option(fc.constantFrom('%zz', '%E0%A4', '&&==', 'a[]=1&a[]=2', 'status=%00', '%', '__proto__[polluted]=1'), { nil: undefined, freq: 4 }),
    accept: fc.constantFrom(undefined, 'text/html', 'application/json'),
  })
  .map((g): Wire => {
    const [method, template] = g.target.split(' ') as ['GET' | 'POST', string];
    let query = new URLSearchParams(g.query).toString();
    if (g.rawQuery !== undefined) query += `${query ? '&' : ''}${g.rawQuery}`;
    const path = `${template.replace(':no', g.segment)}${query ? `?${query}` : ''}`;
    const headers: Record<string, string> = { 'X-API-Key': TEST_API_KEY };
    if (g.accept) headers.Accept = g.accept;
    return { method, path: path.replace(/[^\x21-\x7e]/gu, (c) => enc(c)), headers };
  });

// ---------------------------------------------------------------------------------------------------------
// The properties
// ---------------------------------------------------------------------------------------------------------

const prototypeSnapshot = () =>
  Object.getOwnPropertyNames(Object.prototype)
    .sort()
    .map((name) => [name, Object.getOwnPropertyDescriptor(Object.prototype, name)?.value] as const);

describe.each(ENGINES)('hostile HTTP input on %s (fast-check, real server)', (engine) => {
  let ctx: TestContext;
  let server: Server;
  let port: number;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const prototypeBefore = prototypeSnapshot();

  beforeAll(async () => {
    // Thousands of requests from one address: neither the API's limit nor the rejected-callback limit is under test here.
    ctx = await createTestContext(engine, { env: { RATE_LIMIT_PER_MINUTE: '1000000', CALLBACK_REJECT_RATE_PER_MINUTE: 'off' } });
    server = createServer(ctx.app, ctx.config);
    ({ port } = await listen(server, 0, '127.0.0.1'));
    for (const seed of SEEDED) {
      const res = await send(port, agent, apiCreate(seed));
      expect(res.status).toBe(201);
    }
  });
  afterAll(async () => {
    agent.destroy();
    if (server) await closeServer(server, 1000);
    await ctx?.close();
    expect(prototypeSnapshot()).toEqual(prototypeBefore);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  const apiCreate = (seed: Seed): Wire => ({
    method: 'POST',
    path: '/api/orders',
    headers: { 'X-API-Key': TEST_API_KEY, 'Content-Type': 'application/json' },
    body: Buffer.from(JSON.stringify({ ...seed, notify_url: 'https://merchant.example/notify' })),
  });

  type OrderState = { status: string; seq: number; transaction_id: string | null; flagged: number; updated_at: unknown };
  async function snapshot() {
    const rows = await ctx.db.kysely.selectFrom('orders').select(['order_no', 'status', 'seq', 'transaction_id', 'flagged', 'updated_at']).execute();
    const events = await ctx.db.kysely
      .selectFrom('notifications')
      .select((eb) => eb.fn.countAll<number | string>().as('n'))
      .executeTakeFirstOrThrow();
    const orders = new Map<string, OrderState>(
      rows.map((r) => [
        r.order_no,
        { status: r.status, seq: r.seq, transaction_id: r.transaction_id, flagged: Number(r.flagged), updated_at: String(r.updated_at) },
      ]),
    );
    return { orders, events: Number(events.n) };
  }

  it(
    `callbacks: never a 500, and no order changes without a valid signature (${RUNS} random requests)`,
    async () => {
      const stats = { requests: 0, validlySigned: 0, changes: 0, statuses: {} as Record<number, number> };
      await fc.assert(
        fc.asyncProperty(callbackWireArb, async ({ wire, fresh }) => {
          if (fresh) {
            const created = await send(port, agent, apiCreate({ order_no: fresh, ...FRESH }));
            expect([200, 201]).toContain(created.status);
          }
          const before = await snapshot();
          const reply = await send(port, agent, wire);
          const after = await snapshot();
          const signedFor = validlySigned(wire);
          stats.requests++;
          if (signedFor) stats.validlySigned++;
          stats.statuses[reply.status] = (stats.statuses[reply.status] ?? 0) + 1;

          const context = `\n${describeWire(wire)}\n→ ${reply.status} ${reply.text.slice(0, 300)}`;
          expect(CALLBACK_STATUSES.has(reply.status), `status ${reply.status}${context}`).toBe(true);
          expect(after.orders.size, `orders were created by a callback${context}`).toBe(before.orders.size);
          const changed = [...after.orders].filter(([no, state]) => JSON.stringify(state) !== JSON.stringify(before.orders.get(no))).map(([no]) => no);
          if (changed.length > 0 || after.events !== before.events) {
            stats.changes++;
            expect(signedFor, `state changed (${changed.join(', ')}) without a valid signature${context}`).toBeDefined();
            expect(changed, `changed orders${context}`).toEqual([signedFor!.orderNo]);
            expect(reply.status, `a state change must be acknowledged with 200${context}`).toBe(200);
            expect(after.events - before.events, `one outbox event per transition${context}`).toBe(1);
          }
          expect(prototypeSnapshot()).toEqual(prototypeBefore);
        }),
        { numRuns: RUNS, endOnFailure: true },
      );
      console.info(`[property.http ${engine}] callbacks:`, JSON.stringify(stats));
      // Not vacuous: correctly signed requests were sent and some of them changed orders.
      expect(stats.validlySigned).toBeGreaterThan(RUNS / 10);
      expect(stats.changes).toBeGreaterThan(0);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    `POST /api/orders: never a 500, and a row is created only with 201 (${RUNS} random bodies)`,
    async () => {
      const count = async () =>
        Number(
          (
            await ctx.db.kysely
              .selectFrom('orders')
              .select((eb) => eb.fn.countAll<number | string>().as('n'))
              .executeTakeFirstOrThrow()
          ).n,
        );
      const stats = { requests: 0, statuses: {} as Record<number, number> };
      await fc.assert(
        fc.asyncProperty(orderWireArb, async (wire) => {
          const before = await count();
          const reply = await send(port, agent, wire);
          const after = await count();
          stats.requests++;
          stats.statuses[reply.status] = (stats.statuses[reply.status] ?? 0) + 1;
          const context = `\n${describeWire(wire)}\n→ ${reply.status} ${reply.text.slice(0, 300)}`;
          expect(ORDER_STATUSES.has(reply.status), `status ${reply.status}${context}`).toBe(true);
          expect(after - before, `rows created vs status ${reply.status}${context}`).toBe(reply.status === 201 ? 1 : 0);
          if (reply.status === 201) {
            const orderNo = (JSON.parse(reply.text) as { data: { order_no: string } }).data.order_no;
            const row = await ctx.db.kysely.selectFrom('orders').select(['status', 'seq']).where('order_no', '=', orderNo).executeTakeFirst();
            expect(row, context).toEqual({ status: 'pending', seq: 0 });
          }
          expect(prototypeSnapshot()).toEqual(prototypeBefore);
          expect(({} as Record<string, unknown>).polluted).toBeUndefined();
        }),
        { numRuns: RUNS, endOnFailure: true },
      );
      console.info(`[property.http ${engine}] orders:`, JSON.stringify(stats));
      expect(stats.statuses[201] ?? 0).toBeGreaterThan(0);
    },
    TEST_TIMEOUT_MS,
  );

  it(
    `API paths and queries: never a 500 (${RUNS} random requests)`,
    async () => {
      const stats = { requests: 0, statuses: {} as Record<number, number> };
      await fc.assert(
        fc.asyncProperty(apiWireArb, async (wire) => {
          const reply = await send(port, agent, wire);
          stats.requests++;
          stats.statuses[reply.status] = (stats.statuses[reply.status] ?? 0) + 1;
          const context = `\n${describeWire(wire)}\n→ ${reply.status} ${reply.text.slice(0, 300)}`;
          expect([200, 202, 400, 404, 409].includes(reply.status), `status ${reply.status}${context}`).toBe(true);
          if (
            wire.path.startsWith('/api/orders') &&
            reply.status === 200 &&
            wire.method === 'GET' &&
            !wire.path.startsWith('/api/orders?') &&
            wire.path !== '/api/orders'
          ) {
            expect(JSON.parse(reply.text), context).toMatchObject({ success: true, data: { order_no: expect.any(String) } });
          }
          expect(prototypeSnapshot()).toEqual(prototypeBefore);
          expect(({} as Record<string, unknown>).polluted).toBeUndefined();
        }),
        { numRuns: RUNS, endOnFailure: true },
      );
      console.info(`[property.http ${engine}] api paths:`, JSON.stringify(stats));
      expect(stats.statuses[200] ?? 0).toBeGreaterThan(0);
    },
    TEST_TIMEOUT_MS,
  );

  // Regression: the router's decodeParam throws a URIError with status 400 but no `expose`; it was a 500.
  it('a route parameter with a malformed percent-escape is a 400, not a 500', async () => {
    for (const [method, path] of [
      ['GET', '/api/orders/%zz'],
      ['POST', '/api/orders/%E0%A4/close'],
      ['POST', '/api/orders/%zz/notifications/resend'],
      ['GET', '/sandbox/pay/%zz'],
    ] as const) {
      const reply = await send(port, agent, { method, path, headers: { 'X-API-Key': TEST_API_KEY } });
      expect(reply.status, `${method} ${path}`).toBe(400);
    }
  });

  // Regression: body-parser passes a zlib error on (status 400, expose, but no `type`); the error handler used to
  // map errors by `type` only, so this was a 500 internal_error logged at error level.
  it('a body that does not decompress is a 400, not a 500', async () => {
    for (const path of ['/notify', '/callback', '/api/orders']) {
      for (const coding of ['gzip', 'deflate', 'br']) {
        const reply = await send(port, agent, {
          method: 'POST',
          path,
          headers: { 'X-API-Key': TEST_API_KEY, 'Content-Type': 'application/json', 'Content-Encoding': coding },
          body: Buffer.from('{"order_no":"X"}'),
        });
        expect(reply.status, `${coding} garbage to ${path}`).toBe(400);
        if (path !== '/callback') expect(JSON.parse(reply.text)).toMatchObject({ success: false, code: 'validation_failed' });
      }
    }
  });
});
