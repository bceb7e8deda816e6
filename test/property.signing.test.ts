import { createHash, createHmac } from 'node:crypto';
import type { Request } from 'express';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callbackInput } from '../src/callbacks/callback.routes.ts';
import { createGenericGateway } from '../src/callbacks/gateways/generic.ts';
import { claimedOrderNo, flattenParams } from '../src/callbacks/params.ts';
import { computeSign, signingString, verifySign, SIGN_TYPES, type SignableValue, type SignType } from '../src/shared/signing.ts';
import { gatewaySign } from './helpers/gateway-signer.ts';

/**
 * Hostile input, part 1 (issue 7 item 3): properties of the pure functions behind DESIGN A5 — the signer and
 * verifier, and the decoding of callback parameters. Many runs; PROPERTY_RUNS scales them.
 */
const RUNS = Number(process.env.PROPERTY_RUNS ?? 1000);
// A failure prints its seed; FC_SEED=<seed> replays that run.
if (process.env.FC_SEED) fc.configureGlobal({ seed: Number(process.env.FC_SEED) });
const SECRET = 'property-secret-0123456789';
/** Scales with the runs, so raising PROPERTY_RUNS needs no other change. */
const TIMEOUT = { timeout: 30_000 + RUNS * 10 };

// ---------------------------------------------------------------------------------------------------------
// Arbitraries
// ---------------------------------------------------------------------------------------------------------

const isSurrogate = (c: number) => c >= 0xd800 && c <= 0xdfff;
/** Basic-multilingual-plane characters (no surrogates): UTF-16 order, code point order and UTF-8 byte order agree. */
const bmpChar = fc
  .integer({ min: 0, max: 0xffff })
  .filter((c) => !isSurrogate(c))
  .map((c) => String.fromCharCode(c));
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
  '\r\n',
  '"',
  "'",
  '<',
  '#',
  '?',
  '/',
  '\\',
  '&key=',
  'key=',
  'sign=',
  '\u{10FFFF}',
  '\uFEFF',
  '\uE000',
];
const specialSoup = fc.array(fc.oneof(fc.constantFrom(...SPECIAL), fc.string({ maxLength: 3 })), { maxLength: 12 }).map((parts) => parts.join(''));
const longString = fc.tuple(fc.string({ unit: 'binary', minLength: 1, maxLength: 6 }), fc.integer({ min: 500, max: 12_000 })).map(([s, n]) => s.repeat(n));

/** Values: empty, & = % + and spaces, emoji and any code point, very long strings. */
const valueArb = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: 'binary', maxLength: 24 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 12 }) },
  { weight: 3, arbitrary: specialSoup },
  { weight: 2, arbitrary: fc.constant('') },
  { weight: 1, arbitrary: longString },
);

const PROTO_KEYS = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf'];
const SAFE_KEY = /^[A-Za-z0-9_.-]{1,64}$/;
const safeKeyArb = fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-'), minLength: 1, maxLength: 64 });

/** Keys whose UTF-16 order equals their byte order (see the note on the independent signer below). */
const bmpKeyArb = fc.oneof(
  safeKeyArb,
  fc.string({ unit: bmpChar, minLength: 1, maxLength: 12 }),
  fc.constantFrom(...PROTO_KEYS, 'key', 'sign_type', '0', '10', '9', 'a=b', 'a&b', '', ' ', 'é', 'Z', 'a', 'A', '\uE000', '\uFFFF'),
);
/** Any keys, including astral code points. */
const anyKeyArb = fc.oneof(bmpKeyArb, fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }), fc.constantFrom('😀', '\u{10000}', '\u{1F600}x'));

/** A flat parameter map (never containing `sign`), built with own properties only, so `__proto__` is a real key. */
const paramsArb = (keyArb: fc.Arbitrary<string>, minLength = 0) =>
  fc
    .uniqueArray(
      fc.tuple(
        keyArb.filter((k) => k !== 'sign'),
        valueArb,
      ),
      { selector: ([k]) => k, minLength, maxLength: 24 },
    )
    .map((entries) => Object.fromEntries(entries) as Record<string, string>);

const signTypeArb = fc.constantFrom<SignType>(...SIGN_TYPES);
const secretArb = fc.oneof(fc.constant(SECRET), fc.string({ unit: 'binary', maxLength: 40 }), longString);
const otherType = (t: SignType): SignType => (t === 'MD5' ? 'HMAC-SHA256' : 'MD5');
const nonEmptyKeys = (p: Record<string, string>) => Object.keys(p).filter((k) => p[k] !== '');

/**
 * A second reference signer with a strict UTF-8 byte-order sort. The shared test signer
 * (helpers/gateway-signer.ts) sorts with `Buffer.from(a) < Buffer.from(b)`, which compares the buffers'
 * `toString()` — UTF-16 code-unit order — and so differs from byte order for keys mixing astral characters
 * (U+10000…) with U+E000…U+FFFF. Real callback keys are ASCII (params.ts refuses anything else), so that only
 * matters for these pure properties: the helper is compared on BMP keys, this signer on all keys.
 */
function byteOrderSign(params: Record<string, string>, secret: string, signType: SignType): string {
  const keys = Object.keys(params).filter((k) => k !== 'sign' && params[k] !== '');
  keys.sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
  const text = `${keys.map((k) => `${k}=${params[k]}`).join('&')}&key=${secret}`;
  const digest = signType === 'MD5' ? createHash('md5').update(text, 'utf8') : createHmac('sha256', secret).update(text, 'utf8');
  return digest.digest('hex').toUpperCase();
}

// ---------------------------------------------------------------------------------------------------------
// 1. Signer and verifier
// ---------------------------------------------------------------------------------------------------------

describe('A5 signature: computeSign / verifySign properties', TIMEOUT, () => {
  it('computeSign equals the independent test signer (helpers/gateway-signer.ts) for BMP keys and any values', () => {
    fc.assert(
      fc.property(paramsArb(bmpKeyArb), secretArb, signTypeArb, (params, secret, type) => {
        expect(computeSign(params, secret, type)).toBe(gatewaySign(params, secret, type));
      }),
      { numRuns: RUNS },
    );
  });

  it('computeSign equals a strict byte-order reference signer for any unicode keys', () => {
    fc.assert(
      fc.property(paramsArb(anyKeyArb), secretArb, signTypeArb, (params, secret, type) => {
        expect(computeSign(params, secret, type)).toBe(byteOrderSign(params, secret, type));
      }),
      { numRuns: RUNS },
    );
  });

  it('sorts keys in UTF-8 byte order, not UTF-16 order (U+E000 before U+1F600)', () => {
    expect(signingString({ '\u{1F600}': 'b', '\uE000': 'a', Z: 'z', a: 'y' }, 'k')).toBe('Z=z&a=y&\uE000=a&\u{1F600}=b&key=k');
  });

  it('signs in upper-case hex of the right length, and ignores the sign parameter and empty values', () => {
    fc.assert(
      fc.property(paramsArb(anyKeyArb), secretArb, signTypeArb, valueArb, fc.array(anyKeyArb, { maxLength: 4 }), (params, secret, type, sign, emptyKeys) => {
        const expected = computeSign(params, secret, type);
        expect(expected).toMatch(type === 'MD5' ? /^[0-9A-F]{32}$/ : /^[0-9A-F]{64}$/);
        const withExtras: Record<string, string> = { ...params, sign };
        for (const k of emptyKeys) if (!(k in params) && k !== 'sign') Object.defineProperty(withExtras, k, { value: '', enumerable: true });
        expect(computeSign(withExtras, secret, type)).toBe(expected);
        expect(verifySign(withExtras, secret, type, expected)).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });

  it('accepts the right signature in any mix of hex letter case', () => {
    fc.assert(
      fc.property(paramsArb(anyKeyArb), secretArb, signTypeArb, fc.array(fc.boolean(), { minLength: 64, maxLength: 64 }), (params, secret, type, lower) => {
        const sign = computeSign(params, secret, type);
        const presented = [...sign].map((c, i) => (lower[i] ? c.toLowerCase() : c)).join('');
        expect(verifySign(params, secret, type, presented)).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });

  it('rejects any single-character change, insertion or deletion in the signature', () => {
    const replacement = fc.oneof(
      fc.constantFrom(...'0123456789abcdefABCDEF'),
      fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
      fc.constantFrom('\uFB00', 'ß', 'İ', ' ', '\u0000'),
    );
    fc.assert(
      fc.property(
        paramsArb(anyKeyArb),
        secretArb,
        signTypeArb,
        fc.nat(),
        replacement,
        fc.constantFrom('replace', 'insert', 'delete'),
        (params, secret, type, at, char, op) => {
          const sign = computeSign(params, secret, type);
          const i = at % sign.length;
          if (op === 'replace') fc.pre(char.toUpperCase() !== sign[i]);
          const presented =
            op === 'replace'
              ? sign.slice(0, i) + char + sign.slice(i + 1)
              : op === 'insert'
                ? sign.slice(0, i) + char + sign.slice(i)
                : sign.slice(0, i) + sign.slice(i + 1);
          expect(verifySign(params, secret, type, presented)).toBe(false);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('rejects a changed value (unless both old and new are empty)', () => {
    fc.assert(
      fc.property(paramsArb(anyKeyArb, 1), secretArb, signTypeArb, fc.nat(), valueArb, (params, secret, type, at, value) => {
        const keys = Object.keys(params);
        const key = keys[at % keys.length]!;
        fc.pre(value !== params[key] && (value !== '' || params[key] !== ''));
        const sign = computeSign(params, secret, type);
        const changed = { ...params };
        Object.defineProperty(changed, key, { value, enumerable: true, writable: true, configurable: true });
        expect(verifySign(changed, secret, type, sign)).toBe(false);
      }),
      { numRuns: RUNS },
    );
  });

  it('rejects an added or a removed non-empty parameter', () => {
    fc.assert(
      fc.property(paramsArb(anyKeyArb), secretArb, signTypeArb, anyKeyArb, valueArb, fc.nat(), (params, secret, type, newKey, newValue, at) => {
        const sign = computeSign(params, secret, type);
        if (newKey !== 'sign' && !Object.hasOwn(params, newKey) && newValue !== '') {
          const added = { ...params };
          Object.defineProperty(added, newKey, { value: newValue, enumerable: true });
          expect(verifySign(added, secret, type, sign)).toBe(false);
        }
        const present = nonEmptyKeys(params);
        if (present.length > 0) {
          const removed = { ...params };
          delete removed[present[at % present.length]!];
          expect(verifySign(removed, secret, type, sign)).toBe(false);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('rejects the signature under another secret and under the other sign type', () => {
    fc.assert(
      fc.property(paramsArb(anyKeyArb), secretArb, secretArb, signTypeArb, (params, secret, other, type) => {
        const sign = computeSign(params, secret, type);
        if (other !== secret) expect(verifySign(params, other, type, sign)).toBe(false);
        expect(verifySign(params, secret, otherType(type), sign)).toBe(false);
        expect(verifySign(params, secret, otherType(type), computeSign(params, secret, otherType(type)))).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });

  it('never throws, whatever the values, secret or presented signature', () => {
    const signable: fc.Arbitrary<SignableValue> = fc.oneof(valueArb, fc.double(), fc.integer(), fc.boolean(), fc.constant(null), fc.constant(undefined));
    const mapArb = fc
      .uniqueArray(fc.tuple(anyKeyArb, signable), { selector: ([k]) => k, maxLength: 20 })
      .map((entries) => Object.fromEntries(entries) as Record<string, SignableValue>);
    fc.assert(
      fc.property(
        mapArb,
        secretArb,
        signTypeArb,
        fc.oneof(valueArb, fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF'), maxLength: 80 })),
        (params, secret, type, presented) => {
          const sign = computeSign(params, secret, type);
          expect(typeof sign).toBe('string');
          expect(typeof verifySign(params, secret, type, presented)).toBe('boolean');
          expect(verifySign(params, secret, type, sign.toLowerCase())).toBe(true);
        },
      ),
      { numRuns: RUNS },
    );
  });

  // Regression: a full-Unicode upper-case let a non-hex presentation pass (U+FB00 'ﬀ' → "FF"); signatures are hex.
  it('accepts hex signatures only (U+FB00 "ﬀ" is not "FF")', () => {
    let params: Record<string, string> = {};
    for (let i = 0; !computeSign(params, SECRET, 'MD5').includes('FF'); i++) params = { order_no: `P${i}` };
    const sign = computeSign(params, SECRET, 'MD5');
    expect(verifySign(params, SECRET, 'MD5', sign.replace('FF', '\uFB00'))).toBe(false);
  });

  it('signs finite JSON numbers exactly as JSON.stringify writes them', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (n) => {
        expect(computeSign({ amount: n }, SECRET, 'MD5')).toBe(computeSign({ amount: JSON.stringify(n) }, SECRET, 'MD5'));
      }),
      { numRuns: RUNS },
    );
  });
});

// ---------------------------------------------------------------------------------------------------------
// 2. flattenParams (and claimedOrderNo)
// ---------------------------------------------------------------------------------------------------------

const prototypeSnapshot = () =>
  Object.getOwnPropertyNames(Object.prototype)
    .sort()
    .map((name) => [name, Object.getOwnPropertyDescriptor(Object.prototype, name)?.value] as const);

/** The A5/params.ts contract restated: a non-array object with 1–100 own keys, each safe, each a string or finite number. */
function isAcceptableFlatMap(input: unknown): boolean {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return false;
  const keys = Object.keys(input);
  if (keys.length < 1 || keys.length > 100) return false;
  return keys.every((k) => {
    const v = (input as Record<string, unknown>)[k];
    const safeValue = (typeof v === 'string' && !/&[A-Za-z0-9_.-]{1,64}=/.test(v)) || (typeof v === 'number' && Number.isFinite(v));
    return SAFE_KEY.test(k) && !['__proto__', 'constructor', 'prototype'].includes(k) && safeValue;
  });
}

const hostileKeyArb = fc.oneof(
  { weight: 3, arbitrary: safeKeyArb },
  { weight: 2, arbitrary: fc.constantFrom(...PROTO_KEYS, 'a[]', 'a[b]', 'a.b', 'x'.repeat(65), '', ' ', 'a b', 'é', '😀', '0', '-1', 'NaN') },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 10 }) },
);

const hugeNumbers = fc.constantFrom(
  1e308,
  -1e308,
  Number.MAX_SAFE_INTEGER + 2,
  2 ** 64,
  1e21,
  1e-7,
  5e-324,
  -0,
  0.1 + 0.2,
  Number('123456789012345678901234567890'),
);
const hostileValueArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: valueArb },
  { weight: 2, arbitrary: fc.oneof(fc.double(), fc.integer(), hugeNumbers) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(NaN, Infinity, -Infinity, true, false, null, undefined, 'NaN', 'Infinity', '-0', '1e999', [], {}, ['1'], { v: '1' }),
  },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.bigInt() },
);

/** Mostly near-valid flat maps, so that both verdicts are exercised; sometimes with null prototypes or > 100 keys. */
const nearFlatArb: fc.Arbitrary<unknown> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .tuple(
        fc.uniqueArray(fc.tuple(hostileKeyArb, hostileValueArb), { selector: ([k]) => k, maxLength: 12 }),
        fc.uniqueArray(fc.tuple(safeKeyArb, fc.oneof(valueArb, fc.integer())), { selector: ([k]) => k, maxLength: 6 }),
        fc.boolean(),
      )
      .map(([hostile, safe, nullProto]) => {
        const target: Record<string, unknown> = nullProto ? (Object.create(null) as Record<string, unknown>) : {};
        for (const [k, v] of [...safe, ...hostile]) Object.defineProperty(target, k, { value: v, enumerable: true, writable: true, configurable: true });
        return target;
      }),
  },
  {
    weight: 2,
    arbitrary: fc
      .uniqueArray(fc.tuple(safeKeyArb, fc.string({ maxLength: 3 })), { selector: ([k]) => k, minLength: 95, maxLength: 110 })
      .map((e) => Object.fromEntries(e)),
  },
  { weight: 1, arbitrary: fc.array(hostileValueArb, { maxLength: 5 }) },
  { weight: 1, arbitrary: hostileValueArb },
);

/** JSON text with own `__proto__` / `constructor` keys, parsed as the JSON body parser does. */
const protoJsonArb = fc
  .tuple(fc.json({ maxDepth: 3 }), fc.constantFrom('__proto__', 'constructor', 'prototype'), fc.jsonValue({ maxDepth: 2 }))
  .map(([json, key, value]) => {
    const inner = json.trim().startsWith('{') && json.trim() !== '{}' ? json.trim().slice(1) : '}';
    return JSON.parse(`{${JSON.stringify(key)}:${JSON.stringify(value)}${inner === '}' ? '' : ','}${inner}`) as unknown;
  });

describe('flattenParams properties', TIMEOUT, () => {
  let before: ReturnType<typeof prototypeSnapshot>;
  beforeAll(() => {
    before = prototypeSnapshot();
  });
  afterAll(() => {
    expect(prototypeSnapshot()).toEqual(before);
  });

  const assertNotPolluted = () => {
    expect(prototypeSnapshot()).toEqual(before);
    const probe = {} as Record<string, unknown>;
    expect(probe.polluted).toBeUndefined();
    expect(Object.getPrototypeOf(probe)).toBe(Object.prototype);
  };

  it('never throws and never pollutes Object.prototype for arbitrary values (null prototypes, maps, typed arrays, big ints, prototype keys)', () => {
    const anything = fc.anything({
      key: hostileKeyArb,
      maxDepth: 4,
      withNullPrototype: true,
      withBigInt: true,
      withBoxedValues: true,
      withDate: true,
      withMap: true,
      withSet: true,
      withTypedArray: true,
      withSparseArray: true,
      withObjectString: true,
      stringUnit: 'binary',
    });
    fc.assert(
      fc.property(fc.oneof(anything, fc.jsonValue({ maxDepth: 4 }), protoJsonArb, nearFlatArb), (input) => {
        const result = flattenParams(input);
        expect(typeof result.ok).toBe('boolean');
        if (!result.ok) expect(typeof result.message).toBe('string');
        const claimed = claimedOrderNo(input);
        if (claimed !== undefined) expect(claimed).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
        assertNotPolluted();
      }),
      { numRuns: RUNS },
    );
  });

  it('accepts exactly the flat maps of safe keys to strings or finite numbers, and returns a fresh null-prototype copy', () => {
    let accepted = 0;
    fc.assert(
      fc.property(fc.oneof(nearFlatArb, protoJsonArb), (input) => {
        const result = flattenParams(input);
        expect(result.ok).toBe(isAcceptableFlatMap(input));
        if (result.ok) {
          accepted++;
          const source = input as Record<string, string | number>;
          expect(result.params).not.toBe(input);
          expect(Object.getPrototypeOf(result.params)).toBeNull();
          expect(Object.keys(result.params)).toEqual(Object.keys(source));
          for (const k of Object.keys(source)) expect(result.params[k]).toBe(String(source[k]));
        }
        assertNotPolluted();
      }),
      { numRuns: RUNS },
    );
    expect(accepted).toBeGreaterThan(RUNS / 20); // the generator exercises both verdicts
  });

  it('refuses every prototype key, whether own data property, JSON-parsed or on a null-prototype object', () => {
    for (const key of ['__proto__', 'constructor', 'prototype']) {
      const parsed = JSON.parse(`{"order_no":"A1","${key}":"x","sign":"S"}`) as unknown;
      const nullProto = Object.assign(Object.create(null) as object, { order_no: 'A1', sign: 'S' });
      Object.defineProperty(nullProto, key, { value: 'x', enumerable: true });
      for (const input of [parsed, nullProto]) expect(flattenParams(input)).toMatchObject({ ok: false });
    }
    assertNotPolluted();
  });
});

// ---------------------------------------------------------------------------------------------------------
// 3. Form decoding → verification (callbackInput + the generic gateway, without HTTP, many runs)
// ---------------------------------------------------------------------------------------------------------

/** The fields callbackInput reads from an Express request: a POSTed form whose body parser already ran. */
function formRequest(text: string): Request {
  const body: Record<string, string> = Object.fromEntries(new URLSearchParams(text));
  return {
    method: 'POST',
    body,
    rawBody: Buffer.from(text, 'utf8'),
    originalUrl: '/notify',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    ip: '127.0.0.1',
    is: (type: string | string[]) => ([] as string[]).concat(type).includes('application/x-www-form-urlencoded') && 'application/x-www-form-urlencoded',
  } as unknown as Request;
}

const pairArb = fc.tuple(fc.oneof(hostileKeyArb, fc.constantFrom('order_no', 'amount', 'sign', 'sign_type', 'status')), valueArb);
/** A well-formed payment for order P1 with hostile extras mixed in, so that verification succeeds often enough to matter. */
const paymentFormArb = fc
  .tuple(fc.array(pairArb, { maxLength: 4 }), fc.constantFrom('success', 'failed'), fc.constantFrom('', 'MD5', 'HMAC-SHA256'))
  .map(([extras, status, signType]) => {
    const pairs: Array<[string, string]> = [
      ['order_no', 'P1'],
      ['transaction_id', 'TX-1'],
      ['amount', '12.34'],
      ['status', status],
      ['sign_type', signType],
      ...extras,
    ];
    return new URLSearchParams(pairs.filter(([k]) => k !== 'sign')).toString();
  });
const formTextArb = fc.oneof(
  paymentFormArb,
  fc.array(pairArb, { maxLength: 12 }).map((pairs) => pairs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&')),
  fc.array(pairArb, { maxLength: 12 }).map((pairs) => new URLSearchParams(pairs).toString()),
  fc
    .array(
      fc.oneof(
        fc.constantFrom('&', '=', '%', '%zz', '%E0%A4', '%C0%AF', '+', 'a[]=1', 'a[]=2', '__proto__[x]=1', '__proto__=1', 'constructor=1', 'sign=x'),
        fc.string({ unit: 'binary', maxLength: 6 }),
      ),
      { maxLength: 15 },
    )
    .map((p) => p.join('')),
);

describe('form decoding → generic gateway verification (no HTTP)', TIMEOUT, () => {
  const gateway = createGenericGateway('generic', SECRET);
  const now = new Date();

  it('never throws; duplicates become arrays and are refused; only a correct signature over the decoded fields verifies', async () => {
    const before = prototypeSnapshot();
    let verified = 0;
    await fc.assert(
      fc.asyncProperty(formTextArb, fc.boolean(), async (text, signIt) => {
        let body = text;
        const decoded = [...new URLSearchParams(text)];
        const keys = decoded.map(([k]) => k);
        const unique = new Set(keys).size === keys.length;
        if (signIt && unique) {
          const map = Object.fromEntries(decoded.filter(([k]) => k !== 'sign'));
          const type = map.sign_type === 'HMAC-SHA256' ? 'HMAC-SHA256' : 'MD5';
          body = `${new URLSearchParams(decoded.filter(([k]) => k !== 'sign')).toString()}&sign=${gatewaySign(map, SECRET, type)}`;
        }
        const input = callbackInput(formRequest(body), gateway, 'notify');
        expect(Object.getPrototypeOf(input.params)).toBeNull();
        const verification = await gateway.verify({ params: input.params, rawBody: input.rawBody, headers: input.headers, now });
        const finalKeys = [...new URLSearchParams(body)].map(([k]) => k);
        if (new Set(finalKeys).size !== finalKeys.length) expect(verification).toMatchObject({ ok: false, rejection: { verdict: 'malformed' } });
        if (verification.ok) {
          // Accepted only when signed (here: by us, with the secret) over exactly the decoded fields.
          expect(signIt && unique).toBe(true);
          verified++;
        } else if (!(signIt && unique)) {
          expect(['malformed', 'bad_signature']).toContain(verification.rejection.verdict);
        }
        expect(prototypeSnapshot()).toEqual(before);
      }),
      { numRuns: RUNS },
    );
    expect(verified).toBeGreaterThan(RUNS / 50); // the accepting branch is exercised, not only refusals
  });
});
