import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStripeGateway } from '../src/callbacks/gateways/stripe.ts';
import { computeSign, signingString, verifySign, type SignType } from '../src/shared/signing.ts';
import { createTestContext, TEST_GATEWAY_SECRET, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';

/*
 * Known answers for the inbound signatures, computed once outside this project and written here as hex:
 *   MD5:          php -r 'echo strtoupper(md5($S));'                 and  openssl dgst -md5 (agreed)
 *   HMAC-SHA256:  php -r 'echo strtoupper(hash_hmac("sha256", $S, $key));'  and  openssl dgst -sha256 -hmac "$key" (agreed)
 * with S built as a gateway's PHP SDK does (ksort in byte order, empty values and sign skipped, k=v&…&key=<secret>),
 * the key test-gateway-secret-0123456789abcdef (TEST_GATEWAY_SECRET), values as UTF-8 bytes.
 */
const KEY = 'test-gateway-secret-0123456789abcdef';

interface Vector {
  name: string;
  signType: SignType;
  params: Record<string, string>;
  /** The signing string S, as PHP printed it. */
  s: string;
  sign: string;
  amount: string;
  status: 'paid' | 'failed';
}

const UTF8_EXTRAS = { attach: '中文 + 空格', subject: 'Café «thé» ☕ 🍵', memo: '', Z_upper: 'a=b&c', 'note.v2': 'x' };

const VECTORS: Vector[] = [
  {
    name: 'MD5, every generic field',
    signType: 'MD5',
    params: {
      order_no: 'KA1001',
      transaction_id: '2024050122001446870001',
      amount: '12.34',
      currency: 'CNY',
      status: 'success',
      timestamp: '1714550400',
      nonce: 'a1b2c3d4',
    },
    s: `amount=12.34&currency=CNY&nonce=a1b2c3d4&order_no=KA1001&status=success&timestamp=1714550400&transaction_id=2024050122001446870001&key=${KEY}`,
    sign: '350FA11DAA2BF3632FBB62545C436136',
    amount: '12.34',
    status: 'paid',
  },
  {
    name: 'HMAC-SHA256, sign_type signed too',
    signType: 'HMAC-SHA256',
    params: {
      order_no: 'KA1002',
      transaction_id: '2024050122001446870002',
      amount: '12.34',
      currency: 'CNY',
      status: 'success',
      timestamp: '1714550400',
      nonce: 'e5f6a7b8',
      sign_type: 'HMAC-SHA256',
    },
    s: `amount=12.34&currency=CNY&nonce=e5f6a7b8&order_no=KA1002&sign_type=HMAC-SHA256&status=success&timestamp=1714550400&transaction_id=2024050122001446870002&key=${KEY}`,
    sign: 'DE01A205D92533F885B7908BDC78AF3D3DB14963AEF2AA2E7CECB7918D073E1E',
    amount: '12.34',
    status: 'paid',
  },
  {
    name: 'MD5, UTF-8 extras, an empty value, upper case before lower, "=" and "&" inside a value',
    signType: 'MD5',
    params: { order_no: 'KA1003', transaction_id: 'TX-KA1003', amount: '0.01', status: 'failed', ...UTF8_EXTRAS },
    s: `Z_upper=a=b&c&amount=0.01&attach=中文 + 空格&note.v2=x&order_no=KA1003&status=failed&subject=Café «thé» ☕ 🍵&transaction_id=TX-KA1003&key=${KEY}`,
    sign: '826FFD5E4515FB628C676AA797E5AA65',
    amount: '0.01',
    status: 'failed',
  },
  {
    name: 'HMAC-SHA256, the same UTF-8 extras',
    signType: 'HMAC-SHA256',
    params: { order_no: 'KA1004', transaction_id: 'TX-KA1004', amount: '99999.99', status: 'success', ...UTF8_EXTRAS, sign_type: 'HMAC-SHA256' },
    s: `Z_upper=a=b&c&amount=99999.99&attach=中文 + 空格&note.v2=x&order_no=KA1004&sign_type=HMAC-SHA256&status=success&subject=Café «thé» ☕ 🍵&transaction_id=TX-KA1004&key=${KEY}`,
    sign: '7CA6459350F5A79EC7180DEB197EABF4DC437809E3B7A43C0091ABF5434FC454',
    amount: '99999.99',
    status: 'paid',
  },
];

/** One hex digit changed: still well-formed, no longer the signature. */
const flipped = (hex: string) => `${hex.slice(0, -1)}${hex.at(-1) === '0' ? '1' : '0'}`;

describe('A5 signatures match values computed with PHP and openssl', () => {
  it('the test key is the one the vectors were computed with', () => {
    expect(TEST_GATEWAY_SECRET).toBe(KEY);
  });

  it.each(VECTORS)('$name', ({ params, signType, s, sign }) => {
    expect(signingString(params, KEY)).toBe(s);
    expect(computeSign(params, KEY, signType)).toBe(sign);
    expect(verifySign(params, KEY, signType, sign)).toBe(true);
    expect(verifySign(params, KEY, signType, sign.toLowerCase())).toBe(true);
    expect(verifySign(params, KEY, signType, flipped(sign))).toBe(false);
    expect(verifySign({ ...params, sign: 'ignored' }, KEY, signType, sign)).toBe(true);
  });
});

describe.each(ENGINES)('POST /notify accepts the known-answer signatures and nothing else, on %s', (engine) => {
  let ctx: TestContext;
  // The vectors' timestamp, ten seconds later: well inside the window.
  const now = new Date((1714550400 + 10) * 1000);
  beforeAll(async () => {
    ctx = await createTestContext(engine, { clock: () => now });
    for (const v of VECTORS) {
      const res = await ctx.api('post', '/api/orders').send({ order_no: v.params.order_no, amount: v.amount });
      expect(res.status).toBe(201);
    }
  });
  afterAll(() => ctx.close());

  it.each(VECTORS)('$name', async (v) => {
    const forged = await request(ctx.app)
      .post('/notify')
      .type('form')
      .send({ ...v.params, sign: flipped(v.sign) });
    expect(forged.status).toBe(401);
    expect(forged.body.code).toBe('bad_signature');
    const res = await request(ctx.app)
      .post('/notify')
      .type('form')
      .send({ ...v.params, sign: v.sign });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.data).toEqual({ order_no: v.params.order_no, status: v.status });
  });
});

describe('Stripe-Signature: a known answer computed with openssl', () => {
  // printf '%s' "1714550400.$BODY" | openssl dgst -sha256 -hmac 'whsec_test_0123456789abcdefABCDEF0123456789'
  const SECRET = 'whsec_test_0123456789abcdefABCDEF0123456789';
  const BODY =
    '{"id":"evt_ka_1","object":"event","type":"payment_intent.succeeded","data":{"object":{"id":"pi_KA1007","object":"payment_intent","amount":1234,"amount_received":1234,"currency":"usd","metadata":{"order_no":"KA1007"},"status":"succeeded"}}}';
  const V1 = 'c13f61053a3e43c2749665d7b0216c48e8ee92bada4f0140f5fceb72f228e59c';
  const gateway = createStripeGateway({ webhookSecret: SECRET });
  const verify = (header: string) =>
    gateway.verify({
      params: JSON.parse(BODY) as Record<string, unknown>,
      rawBody: Buffer.from(BODY),
      headers: { 'stripe-signature': header },
      now: new Date(1714550400_000),
    });

  it('accepts t=1714550400,v1=<the known answer> and refuses it with one digit changed', () => {
    const verified = verify(`t=1714550400,v1=${V1}`);
    expect(verified).toMatchObject({ ok: true, result: { orderNo: 'KA1007', transactionId: 'pi_KA1007', outcome: 'paid' } });
    expect(verify(`t=1714550400,v1=${flipped(V1)}`)).toMatchObject({ ok: false, rejection: { verdict: 'bad_signature' } });
  });
});
