import { createServer } from 'node:net';
import { verify } from 'node:crypto';
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { QueryTarget } from '../src/reconcile/gateway-client.ts';
import { createWechatpayClient, type WechatpayClientOptions } from '../src/reconcile/clients/wechatpay.client.ts';
import { authorizationHeader, loadMerchantPrivateKey, signMessage } from '../src/reconcile/clients/wechatpay-signing.ts';
import { parsePlatformKeys } from '../src/callbacks/gateways/wechatpay-crypto.ts';
import { startWechatpayStandin, WECHATPAY_STANDIN_KEYS as KEYS, type WechatpayStandin } from './helpers/wechatpay-standin.ts';
import { failure, wechatpayClientOptions } from './helpers/gateway-call.ts';

/*
 * The client against a local WeChat Pay API v3 stand-in that checks each request's signature with the merchant
 * public key (its own code) and signs its answers with a platform key, as api.mch.weixin.qq.com does.
 */

// wechatpay-go's signer test vector (core/auth/signers/sha256withrsa_signer_test.go): SHA256withRSA("source").
const GO_SDK_TEST_KEY = `-----BEGIN TESTING KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDZUJN33V+dSfvd
fL0Mu+39XrZNXFFMQSy1V15FpncHeV47SmV0TzTqZc7hHB0ddqAdDi8Z5k3TKqb7
6sOwYr5TcAfuR6PIPaleyE0/0KrljBum2Isa2Nyq7Dgc3ElBQ6YN4l/a+DpvKaz1
FSKmKrhLNskqokWVSlu4g8OlKlbPXQ9ibII14MZRQrrkTmHYHzfi7GXXM0thAKuR
0HNvyhTHBh4/lrYM3GaMvmWwkwvsMavnOex6+eioZHBOb1/EIZ/LzC6zuHArPpyW
3daGaZ1rtQB1vVzTyERAVVFsXXgBHvfFud3w3ShsJYk8JvMwK2RpJ5/gV0QSARcm
LDRUAlPzAgMBAAECggEBAMc7rDeUaXiWv6bMGbZ3BTXpg1FhdddnWUnYE8HfX/km
OFI7XtBHXcgYFpcjYz4D5787pcsk7ezPidAj58zqenuclmjKnUmT3pfbI5eCA2v4
C9HnbYDrmUPK1ZcADtka4D6ScDccpNYNa1g2TFHzkIrEa6H+q7S3O2fqxY/DRVtN
0JIXalBb8daaqL5QVzSmM2BMVnHy+YITJWIkP2a3pKs9C0W65JGDsnG0wVrHinHF
+cnhFZIbaPEI//DAFMc9NkrWOKVRTEgcCUxCFaHOZVNxDWZD7A2ZfJB2rK6eg//y
gEiFDR2h6mTaDowMB4YF2n2dsIO4/dCG8vPHI20jn4ECgYEA/ZGu6lEMlO0XZnam
AZGtiNgLcCfM/C2ZERZE7QTRPZH1WdK92Al9ndldsswFw4baJrJLCmghjF/iG4zi
hhBvLnOLksnZUfjdumxoHDWXo2QBWbI5QsWIE7AuTiWgWj1I7X4fCXSQf6i+M/y2
6TogQ7d0ANpZFyOkTNMn/tiJvLECgYEA22XqlamG/yfAGWery5KNH2DGlTIyd6xJ
WtJ9j3jU99lZ0bCQ5xhiBbU9ImxCi3zgTsoqLWgA/p00HhNFNoUcTl9ofc0G3zwT
D1y0ZzcnVKxGJdZ6ohW52V0hJStAigtjYAsUgjm7//FH7PiQDBDP1Wa6xSRkDQU/
aSbQxvEE8+MCgYEA3bb8krW7opyM0XL9RHH0oqsFlVO30Oit5lrqebS0oHl3Zsr2
ZGgoBlWBsEzk3UqUhTFwm/DhJLTSJ/TQPRkxnhQ5/mewNhS9C7yua7wQkzVmWN+V
YeUGTvDGDF6qDz12/vJAgSwDDRym8x4NcXD5tTw7mmNRcwIfL22SkysThIECgYAV
BgccoEoXWS/HP2/u6fQr9ZIR6eV8Ij5FPbZacTG3LlS1Cz5XZra95UgebFFUHHtC
EY1JHJY7z8SWvTH8r3Su7eWNaIAoFBGffzqqSVazfm6aYZsOvRY6BfqPHT3p/H1h
Tq6AbBffxrcltgvXnCTORjHPglU0CjSxVs7awW3AEQKBgB5WtaC8VLROM7rkfVIq
+RXqE5vtJfa3e3N7W3RqxKp4zHFAPfr82FK5CX2bppEaxY7SEZVvVInKDc5gKdG/
jWNRBmvvftZhY59PILHO2X5vO4FXh7suEjy6VIh0gsnK36mmRboYIBGsNuDHjXLe
BDa+8mDLkWu5nHEhOxy2JJZl
-----END TESTING KEY-----`.replace(/TESTING KEY/g, 'PRIVATE KEY');
const GO_SDK_SIGNATURE =
  'BKyAfU4iMCuvXMXS0Wzam3V/cnxZ+JaqigPM5OhljS2iOT95OO6Fsuml2JkFANJU9K6q9bLlDhPXuoVz+pp4hAm6' +
  'pHU4ld815U4jsKu1RkyaII+1CYBUYC8TK0XtJ8FwUXXz8vZHh58rrAVN1XwNyvD1vfpxrMT4SL536GLwvpUHlCqIMzoZUguLli/K8V29QiOh' +
  'uH6IEqLNJn8e9b3nwNcQ7be3CzYGpDAKBfDGPCqCv8Rw5zndhlffk2FEA70G4hvMwe51qMN/RAJbknXG23bSlObuTCN7Ndj1aJGH6/L+hdwf' +
  'LpUtJm4QYVazzW7DFD27EpSQEqA8bX9+8m1rLg==';

let standin: WechatpayStandin;
beforeAll(async () => {
  standin = await startWechatpayStandin();
});
afterAll(() => standin.close());
beforeEach(() => {
  standin.setBehaviour('normal');
  standin.requests.length = 0;
});

const client = (overrides: Partial<WechatpayClientOptions> = {}) => createWechatpayClient(wechatpayClientOptions(standin.url, overrides));

let seq = 0;
const target = (orderNo = `WX${Date.now()}${++seq}`): QueryTarget => ({ orderNo, amountMinor: 1234, currency: 'CNY', createdAt: new Date() });
const live = () => new AbortController().signal;

describe('WeChat Pay request signing', () => {
  it('signs SHA256withRSA like the official Go SDK (its known answer)', () => {
    expect(signMessage(loadMerchantPrivateKey(GO_SDK_TEST_KEY), 'source')).toBe(GO_SDK_SIGNATURE);
  });

  it('builds the Authorization header over METHOD, path with query, timestamp, nonce and body', () => {
    const key = loadMerchantPrivateKey(KEYS.merchantPrivateKeyPem);
    const header = authorizationHeader(
      { mchId: '1900000109', serial: 'ABC123', key },
      { method: 'POST', target: '/v3/pay/transactions/out-trade-no/A1/close', body: '{"mchid":"1900000109"}', timestamp: 1624523846, nonce: 'NONCE32' },
    );
    const signature = /signature="([^"]+)"$/.exec(header)?.[1] ?? '';
    expect(header).toBe(`WECHATPAY2-SHA256-RSA2048 mchid="1900000109",nonce_str="NONCE32",timestamp="1624523846",serial_no="ABC123",signature="${signature}"`);
    const message = 'POST\n/v3/pay/transactions/out-trade-no/A1/close\n1624523846\nNONCE32\n{"mchid":"1900000109"}\n';
    expect(verify('RSA-SHA256', Buffer.from(message), KEYS.merchantPublicKey, Buffer.from(signature, 'base64'))).toBe(true);
  });

  it('refuses a merchant key that is not an RSA private key, naming the setting', () => {
    expect(() => client({ merchantPrivateKey: 'not a key' })).toThrow(/WECHATPAY_MCH_PRIVATE_KEY/);
    expect(() => client({ merchantPrivateKey: KEYS.platformKeysJson })).toThrow(/WECHATPAY_MCH_PRIVATE_KEY/);
    expect(() => client({ mchId: '' })).toThrow(/WECHATPAY_MCH_ID/);
    expect(() => client({ merchantSerial: ' ' })).toThrow(/WECHATPAY_MCH_SERIAL/);
  });

  it('accepts a PEM pasted with literal \\n sequences', () => {
    expect(() => client({ merchantPrivateKey: KEYS.merchantPrivateKeyPem.replace(/\n/g, '\\n') })).not.toThrow();
  });
});

describe('the stand-in checks signatures like WeChat Pay', () => {
  it('refuses a request signed with another merchant key: 401 SIGN_ERROR, and the client reports http_status', async () => {
    const t = target();
    standin.setTrade(t.orderNo, { state: 'SUCCESS', total: 1234 });
    const error = await failure(client({ merchantPrivateKey: KEYS.rogue.privateKey }).query(t, live()));
    expect(error.kind).toBe('http_status');
    expect(error.message).toContain('401');
    expect(error.message).toContain('SIGN_ERROR');
    expect(error.excerpt).toContain('SIGN_ERROR');
    expect(standin.requests).toHaveLength(1);
    expect(standin.requests[0]).toMatchObject({ authorized: false, refusal: 'signature does not verify' });
  });

  it('refuses a request without Authorization and one whose body was changed after signing', async () => {
    const plain = await request(`${standin.url}/v3/pay/transactions/out-trade-no/X1?mchid=${KEYS.mchId}`, { headers: { accept: 'application/json' } });
    expect(plain.statusCode).toBe(401);
    expect(await plain.body.json()).toEqual({ code: 'SIGN_ERROR', message: '签名错误' });

    const path = '/v3/pay/transactions/out-trade-no/X1/close';
    const timestamp = Math.floor(Date.now() / 1000);
    const signer = { mchId: KEYS.mchId, serial: KEYS.merchantSerial, key: loadMerchantPrivateKey(KEYS.merchantPrivateKeyPem) };
    const auth = authorizationHeader(signer, { method: 'POST', target: path, body: '{"mchid":"1900000109"}', timestamp, nonce: 'N1' });
    const tampered = await request(`${standin.url}${path}`, { method: 'POST', headers: { authorization: auth }, body: '{"mchid":"1900000108"}' });
    expect(tampered.statusCode).toBe(401);
    await tampered.body.dump();
    const honest = await request(`${standin.url}${path}`, { method: 'POST', headers: { authorization: auth }, body: '{"mchid":"1900000109"}' });
    expect(honest.statusCode).toBe(404); // verified; no such order
    await honest.body.dump();
    expect(standin.requests.map((r) => r.authorized)).toEqual([false, false, true]);
  });
});

describe('WeChat Pay client: query', () => {
  it('paid: transaction_id, amount.total in minor units and currency, from a signed answer to a signed request', async () => {
    const t = target();
    standin.setTrade(t.orderNo, { state: 'SUCCESS', total: 1234, currency: 'CNY', transactionId: '4200002025060612345678901234' });
    const answer = await client().query(t, live());
    expect(answer).toMatchObject({ state: 'paid', transactionId: '4200002025060612345678901234', amount: { kind: 'minor', value: 1234 }, currency: 'CNY' });
    expect(answer).not.toHaveProperty('mismatch');
    expect(answer.fields).toMatchObject({ out_trade_no: t.orderNo, mchid: KEYS.mchId, trade_state: 'SUCCESS', amount: { total: 1234, currency: 'CNY' } });
    const [sent] = standin.requests;
    expect(sent).toMatchObject({ method: 'GET', url: `/v3/pay/transactions/out-trade-no/${t.orderNo}?mchid=${KEYS.mchId}`, authorized: true, body: '' });
    expect(sent!.headers.accept).toBe('application/json');
    expect(sent!.headers['user-agent']).toBeTruthy();
    expect(sent!.headers['wechatpay-serial']).toBe(KEYS.platformSerial); // the WeChat Pay public key the answer should be signed with
    expect(sent!.headers.authorization).toMatch(new RegExp(`^WECHATPAY2-SHA256-RSA2048 mchid="${KEYS.mchId}",nonce_str="[A-Za-z0-9]{32}",`));
    expect(sent!.headers.authorization).toContain(`serial_no="${KEYS.merchantSerial}"`);
  });

  it('REFUND: it was paid, so paid', async () => {
    const t = target();
    standin.setTrade(t.orderNo, { state: 'REFUND', total: 500, currency: 'CNY', transactionId: '4200000000000000000000000001' });
    expect(await client().query(t, live())).toMatchObject({ state: 'paid', transactionId: '4200000000000000000000000001', amount: { value: 500 } });
  });

  it.each([
    ['NOTPAY', 'pending'],
    ['USERPAYING', 'pending'],
    ['PAYERROR', 'failed'],
    ['CLOSED', 'closed'],
    ['REVOKED', 'closed'],
  ] as const)('%s → %s', async (state, expected) => {
    const t = target();
    standin.setTrade(t.orderNo, { state });
    const answer = await client().query(t, live());
    expect(answer).toEqual({ state: expected, gatewayStatus: state, fields: expect.objectContaining({ trade_state: state, out_trade_no: t.orderNo }) });
  });

  it('unknown order (404 ORDER_NOT_EXIST, signed) → not_found', async () => {
    const answer = await client().query(target(), live());
    expect(answer).toEqual({ state: 'not_found', gatewayStatus: 'ORDER_NOT_EXIST', fields: { code: 'ORDER_NOT_EXIST', message: '订单不存在' } });
  });

  it('another merchant id in the answer → paid with mismatch', async () => {
    const t = target();
    standin.setTrade(t.orderNo, { state: 'SUCCESS', total: 1234, mchid: '1900009999' });
    expect(await client().query(t, live())).toMatchObject({ state: 'paid', mismatch: 'mchid 1900009999 is not WECHATPAY_MCH_ID' });
  });

  it('another merchant id on an unpaid answer changes nothing: malformed', async () => {
    const t = target();
    standin.setTrade(t.orderNo, { state: 'CLOSED', mchid: '1900009999' });
    expect((await failure(client().query(t, live()))).kind).toBe('malformed');
  });

  it.each(['mis-signed', 'unsigned', 'stale', 'unknown-serial'] as const)(
    '%s answer → bad_signature, for a paid and for an unknown order',
    async (behaviour) => {
      const t = target();
      standin.setTrade(t.orderNo, { state: 'SUCCESS', total: 1234 });
      standin.setBehaviour(behaviour);
      const paid = await failure(client().query(t, live()));
      expect(paid.kind).toBe('bad_signature');
      expect(paid.excerpt).toContain(t.orderNo);
      expect((await failure(client().query(target(), live()))).kind).toBe('bad_signature');
    },
  );

  it('a platform key given as a second serial also verifies (key rotation)', async () => {
    const t = target();
    standin.setTrade(t.orderNo, { state: 'NOTPAY' });
    const other = JSON.stringify({
      OLDSERIAL01: KEYS.rogue.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      ...JSON.parse(KEYS.platformKeysJson),
    });
    expect(await client({ platformKeys: parsePlatformKeys(other) }).query(t, live())).toMatchObject({ state: 'pending' });
  });

  it('garbage (signed, not JSON) → malformed', async () => {
    standin.setBehaviour('garbage');
    const error = await failure(client().query(target(), live()));
    expect(error.kind).toBe('malformed');
    expect(error.excerpt).toContain('502 Bad Gateway');
  });

  it.each([
    ['an empty transaction_id', { transactionId: '' }],
    ['a currency that is not ISO 4217', { currency: 'cny' }],
    ['a fractional total', { total: 12.5 }],
    ['a transaction_id that would swallow a signed pair', { transactionId: '42&sign=x' }],
  ])('a paid answer with %s → malformed', async (_name, trade) => {
    const t = target();
    standin.setTrade(t.orderNo, { state: 'SUCCESS', ...trade });
    expect((await failure(client().query(t, live()))).kind).toBe('malformed');
  });

  it('HTTP 500 → http_status with the answer excerpt', async () => {
    standin.setBehaviour('http-500');
    const error = await failure(client().query(target(), live()));
    expect(error.kind).toBe('http_status');
    expect(error.message).toContain('500');
    expect(error.excerpt).toContain('SYSTEM_ERROR');
  });

  it('no answer → timeout within the configured timeout', async () => {
    standin.setBehaviour('hang');
    const started = Date.now();
    const error = await failure(client({ timeoutMs: 300 }).query(target(), live()));
    expect(error.kind).toBe('timeout');
    expect(Date.now() - started).toBeGreaterThanOrEqual(280);
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it('an aborted signal stops the call at once', async () => {
    standin.setBehaviour('hang');
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 100);
    const error = await failure(client({ timeoutMs: 10_000 }).query(target(), controller.signal));
    expect(error.kind).toBe('network');
    expect(error.message).toMatch(/aborted/);
    expect(Date.now() - started).toBeLessThan(1500);
    expect(standin.requests).toHaveLength(1);
  });

  it('an already aborted signal sends nothing', async () => {
    const controller = new AbortController();
    controller.abort();
    expect((await failure(client().query(target(), controller.signal))).kind).toBe('network');
    expect(standin.requests).toHaveLength(0);
  });

  it('nobody listening → network', async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as { port: number };
        probe.close(() => resolve(port));
      });
    });
    expect((await failure(client({ baseUrl: `http://127.0.0.1:${port}` }).query(target(), live()))).kind).toBe('network');
  });
});

describe('WeChat Pay client: close', () => {
  it('closes an unpaid order: signed POST with {"mchid"} → 204, verified', async () => {
    const t = target();
    standin.setTrade(t.orderNo, { state: 'NOTPAY' });
    expect(await client().close!(t, live())).toEqual({ fields: {} });
    expect(standin.trade(t.orderNo)?.state).toBe('CLOSED');
    const [sent] = standin.requests;
    expect(sent).toMatchObject({
      method: 'POST',
      url: `/v3/pay/transactions/out-trade-no/${t.orderNo}/close`,
      body: `{"mchid":"${KEYS.mchId}"}`,
      authorized: true,
    });
    expect(sent!.headers['content-type']).toBe('application/json');
    expect(sent!.headers.accept).toBe('application/json');
  });

  it('an unknown payment (ORDER_NOT_EXIST) resolves', async () => {
    expect(await client().close!(target(), live())).toEqual({ fields: { code: 'ORDER_NOT_EXIST', message: '订单不存在' } });
  });

  it('a paid order (ORDERPAID) → refused', async () => {
    const t = target();
    standin.setTrade(t.orderNo, { state: 'SUCCESS', total: 1234 });
    const error = await failure(client().close!(t, live()));
    expect(error.kind).toBe('refused');
    expect(error.excerpt).toContain('ORDERPAID');
    expect(standin.trade(t.orderNo)?.state).toBe('SUCCESS');
  });

  it.each(['mis-signed', 'unsigned'] as const)('%s answer to a close (204 or ORDER_NOT_EXIST) → bad_signature', async (behaviour) => {
    const t = target();
    standin.setTrade(t.orderNo, { state: 'NOTPAY' });
    standin.setBehaviour(behaviour);
    expect((await failure(client().close!(t, live()))).kind).toBe('bad_signature');
    expect((await failure(client().close!(target(), live()))).kind).toBe('bad_signature');
  });

  it('HTTP 500 → http_status; no answer → timeout', async () => {
    standin.setBehaviour('http-500');
    expect((await failure(client().close!(target(), live()))).kind).toBe('http_status');
    standin.setBehaviour('hang');
    expect((await failure(client({ timeoutMs: 200 }).close!(target(), live()))).kind).toBe('timeout');
  });
});
