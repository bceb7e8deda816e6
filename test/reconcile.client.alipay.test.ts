import { createServer } from 'node:net';
import { createSign } from 'node:crypto';
import { request } from 'undici';
import { AlipaySdk } from 'alipay-sdk';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { GatewayCallError, QueryTarget } from '../src/reconcile/gateway-client.ts';
import type { AlipayClientOptions } from '../src/reconcile/clients/alipay.client.ts';
import { alipayAnswerBody, alipayRequestContent, startAlipayStandin, ALIPAY_STANDIN_KEYS as KEYS, type AlipayStandin } from './helpers/alipay-standin.ts';
import { alipayClient, failure } from './helpers/gateway-call.ts';

/*
 * The client against a local Alipay gateway.do stand-in that checks each request's RSA2 signature with the app's
 * public key (its own code) and signs the raw text of its answers with a platform key, as openapi.alipay.com does.
 */

let standin: AlipayStandin;
beforeAll(async () => {
  standin = await startAlipayStandin();
});
afterAll(() => standin.close());
beforeEach(() => {
  standin.setBehaviour('normal');
  standin.requests.length = 0;
});

let seq = 0;
const orderNo = () => `AP${Date.now().toString(36)}${(++seq).toString(36)}`.toUpperCase();
const target = (no: string): QueryTarget => ({ orderNo: no, amountMinor: 1234, currency: 'CNY', createdAt: new Date() });
const signal = () => new AbortController().signal;
const client = (over: Partial<AlipayClientOptions> = {}) => alipayClient(standin.url, over);

describe('Alipay client: query', () => {
  it('a paid trade is paid, with trade_no as transaction id and total_amount as decimal text, like the notification', async () => {
    const no = orderNo();
    standin.setTrade(no, { status: 'TRADE_SUCCESS', totalAmount: '12.34', tradeNo: '2024050122001446870500001' });
    const answer = await client().query(target(no), signal());
    expect(answer).toEqual({
      state: 'paid',
      transactionId: '2024050122001446870500001',
      amount: { kind: 'decimal', value: '12.34' },
      currency: undefined,
      fields: expect.objectContaining({ code: '10000', out_trade_no: no, trade_status: 'TRADE_SUCCESS', total_amount: '12.34' }) as unknown,
    });
    expect('mismatch' in answer).toBe(false);
    expect(standin.requests).toHaveLength(1);
    expect(standin.requests[0]).toMatchObject({ api: 'alipay.trade.query', signatureValid: true, code: '10000' });
  });

  it('sends the documented public parameters, RSA2-signed, with biz_content {"out_trade_no"}', async () => {
    const no = orderNo();
    await client().query(target(no), signal());
    const params = standin.requests[0]!.params;
    expect(Object.keys(params).sort()).toEqual(['app_id', 'biz_content', 'charset', 'format', 'method', 'sign', 'sign_type', 'timestamp', 'version']);
    expect(params).toMatchObject({ app_id: KEYS.appId, method: 'alipay.trade.query', format: 'JSON', charset: 'utf-8', sign_type: 'RSA2', version: '1.0' });
    expect(params.biz_content).toBe(JSON.stringify({ out_trade_no: no }));
    // Alipay reads the timestamp as Beijing time (UTC+8).
    const beijing = new Date(`${params.timestamp!.replace(' ', 'T')}+08:00`).getTime();
    expect(Math.abs(beijing - Date.now())).toBeLessThan(60_000);
  });

  it('TRADE_FINISHED is paid too, and a cross-border trade states its trans_currency', async () => {
    const no = orderNo();
    standin.setTrade(no, { status: 'TRADE_FINISHED', totalAmount: '5.00', tradeNo: 'T-FINISHED-1', transCurrency: 'USD' });
    expect(await client().query(target(no), signal())).toMatchObject({
      state: 'paid',
      transactionId: 'T-FINISHED-1',
      amount: { kind: 'decimal', value: '5.00' },
      currency: 'USD',
    });
  });

  it('WAIT_BUYER_PAY is pending, TRADE_CLOSED is closed, an unknown trade (ACQ.TRADE_NOT_EXIST) is not_found', async () => {
    const [waiting, closed, unknown] = [orderNo(), orderNo(), orderNo()];
    standin.setTrade(waiting, { status: 'WAIT_BUYER_PAY', totalAmount: '12.34' });
    standin.setTrade(closed, { status: 'TRADE_CLOSED', totalAmount: '12.34' });
    const c = client();
    expect(await c.query(target(waiting), signal())).toEqual({
      state: 'pending',
      gatewayStatus: 'WAIT_BUYER_PAY',
      fields: expect.objectContaining({ trade_status: 'WAIT_BUYER_PAY' }) as unknown,
    });
    expect(await c.query(target(closed), signal())).toMatchObject({ state: 'closed', gatewayStatus: 'TRADE_CLOSED' });
    expect(await c.query(target(unknown), signal())).toEqual({
      state: 'not_found',
      gatewayStatus: 'ACQ.TRADE_NOT_EXIST',
      fields: expect.objectContaining({ code: '40004', sub_code: 'ACQ.TRADE_NOT_EXIST', out_trade_no: unknown }) as unknown,
    });
  });

  it('a paid answer about another out_trade_no is paid with mismatch; any other state about another order is malformed', async () => {
    const [paid, waiting] = [orderNo(), orderNo()];
    standin.setTrade(paid, { status: 'TRADE_SUCCESS', totalAmount: '12.34', tradeNo: 'T-OTHER', outTradeNo: 'SOMEONE-ELSE' });
    standin.setTrade(waiting, { status: 'TRADE_CLOSED', totalAmount: '12.34', outTradeNo: 'SOMEONE-ELSE' });
    const answer = await client().query(target(paid), signal());
    expect(answer).toMatchObject({ state: 'paid', transactionId: 'T-OTHER', mismatch: 'out_trade_no "SOMEONE-ELSE" is not the order asked' });
    const err = await failure(client().query(target(waiting), signal()));
    expect([err.kind, err.message]).toEqual(['malformed', 'Alipay answered about out_trade_no "SOMEONE-ELSE", not the order asked']);
  });

  it('the signature is checked over the raw text of the response value ("\\/" escapes kept), not a re-serialization', async () => {
    const no = orderNo();
    standin.setTrade(no, { status: 'TRADE_SUCCESS', totalAmount: '1.00', tradeNo: 'T-RAW', extra: { store_name: '测试/门店' } });
    const answer = await client().query(target(no), signal());
    expect(answer).toMatchObject({ state: 'paid', fields: { store_name: '测试/门店' } });
    expect(alipayAnswerBody('x_response', { store_name: 'a/b' })).toContain('"a\\/b"');
  });
});

describe('Alipay client: answers that tell nothing', () => {
  const paidTrade = () => {
    const no = orderNo();
    standin.setTrade(no, { status: 'TRADE_SUCCESS', totalAmount: '12.34', tradeNo: 'T-PAID' });
    return no;
  };

  it('a mis-signed answer is bad_signature, for query and close', async () => {
    standin.setBehaviour('mis-signed');
    const err = await failure(client().query(target(paidTrade()), signal()));
    expect([err.kind, err.message]).toEqual(['bad_signature', 'The answer of alipay.trade.query does not verify with ALIPAY_PUBLIC_KEY']);
    expect(err.excerpt).toContain('"alipay_trade_query_response"');
    const closeErr = await failure(client().close!(target(orderNo()), signal()));
    expect(closeErr.kind).toBe('bad_signature');
  });

  it('an answer verified with a key that is not Alipay’s is bad_signature (the client really verifies)', async () => {
    const err = await failure(client({ publicKey: KEYS.rogue.publicKey }).query(target(paidTrade()), signal()));
    expect(err.kind).toBe('bad_signature');
  });

  it('an unsigned answer is bad_signature, also an unsigned trade-not-exist; an unsigned gateway-level 40002 is not_configured', async () => {
    standin.setBehaviour('unsigned');
    expect((await failure(client().query(target(paidTrade()), signal()))).message).toBe('The answer of alipay.trade.query is not signed');
    expect((await failure(client().query(target(orderNo()), signal()))).kind).toBe('bad_signature');
    expect((await failure(client().close!(target(orderNo()), signal()))).kind).toBe('bad_signature');
    const err = await failure(client({ appId: '2021000000000001' }).query(target(orderNo()), signal()));
    expect([err.kind, err.message]).toEqual([
      'not_configured',
      'Alipay refused the request (unsigned answer): 40002 Invalid Arguments, isv.invalid-app-id 无效的AppID参数',
    ]);
  });

  it('garbage is malformed, HTTP 500 is http_status, a closed port is network', async () => {
    standin.setBehaviour('garbage');
    const garbage = await failure(client().query(target(paidTrade()), signal()));
    expect([garbage.kind, garbage.excerpt]).toEqual(['malformed', '<html>Service Unavailable</html>']);
    standin.setBehaviour('http-500');
    const status = await failure(client().query(target(paidTrade()), signal()));
    expect([status.kind, status.message]).toEqual(['http_status', 'Alipay answered HTTP 500']);
    expect(status.excerpt).toContain('500 Internal Server Error');
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const network = await failure(client({ gatewayUrl: `http://127.0.0.1:${port}/gateway.do` }).query(target(orderNo()), signal()));
    expect(network.kind).toBe('network');
  });

  it('a gateway that hangs is a timeout within the configured timeout', async () => {
    standin.setBehaviour('hang');
    const started = Date.now();
    const err = await failure(client({ timeoutMs: 300 }).query(target(paidTrade()), signal()));
    expect([err.kind, err.message]).toEqual(['timeout', 'Alipay did not answer alipay.trade.query within 300 ms']);
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it('an aborted signal stops the call at once; an already aborted one sends nothing', async () => {
    standin.setBehaviour('hang');
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 100);
    const err = await failure(client({ timeoutMs: 10_000 }).query(target(paidTrade()), controller.signal));
    expect([err.kind, err.message]).toEqual(['network', 'The call to Alipay was aborted']);
    expect(Date.now() - started).toBeLessThan(2000);
    standin.requests.length = 0;
    const aborted = AbortSignal.abort();
    expect((await failure(client().close!(target(orderNo()), aborted))).message).toBe('The call to Alipay was aborted');
    expect(standin.requests).toHaveLength(0);
  });

  const signed = (response: Record<string, unknown>, key = 'alipay_trade_query_response') => ({ body: alipayAnswerBody(key, response) });
  const ok = { code: '10000', msg: 'Success', out_trade_no: 'X', trade_no: 'T1', total_amount: '1.00', trade_status: 'TRADE_SUCCESS' };

  it.each([
    ['no total_amount', { ...ok, out_trade_no: '$', total_amount: undefined }, 'malformed', 'total_amount must be a plain decimal such as 12.34'],
    [
      'an amount that is not decimal text',
      { ...ok, out_trade_no: '$', total_amount: '1e3' },
      'malformed',
      'total_amount must be a plain decimal such as 12.34',
    ],
    ['no trade_no', { ...ok, out_trade_no: '$', trade_no: '' }, 'malformed', 'trade_no must be 1-64 printable ASCII characters'],
    ['a bad trans_currency', { ...ok, out_trade_no: '$', trans_currency: 'usd' }, 'malformed', 'trans_currency must be an ISO 4217 code'],
    [
      'an unknown trade_status',
      { ...ok, out_trade_no: '$', trade_status: 'TRADE_PENDING' },
      'malformed',
      'trade_status "TRADE_PENDING" is not one Alipay documents',
    ],
    ['no out_trade_no', { ...ok, out_trade_no: undefined }, 'malformed', 'out_trade_no is missing from the answer'],
    [
      '20000 (service unavailable)',
      { code: '20000', msg: 'Service Currently Unavailable', sub_code: 'isp.unknow-error', sub_msg: '系统繁忙' },
      'http_status',
      'Alipay failed: 20000 Service Currently Unavailable, isp.unknow-error 系统繁忙',
    ],
    [
      'ACQ.SYSTEM_ERROR',
      { code: '40004', msg: 'Business Failed', sub_code: 'ACQ.SYSTEM_ERROR', sub_msg: '系统错误' },
      'http_status',
      'Alipay failed: 40004 Business Failed, ACQ.SYSTEM_ERROR 系统错误',
    ],
    [
      '40006 (no permission)',
      { code: '40006', msg: 'Insufficient Permissions', sub_code: 'isv.insufficient-isv-permissions', sub_msg: '权限不足' },
      'not_configured',
      'Alipay refused the request: 40006 Insufficient Permissions, isv.insufficient-isv-permissions 权限不足',
    ],
    [
      'an undocumented business error',
      { code: '40004', msg: 'Business Failed', sub_code: 'ACQ.SOMETHING_NEW' },
      'refused',
      'Alipay refused the request: 40004 Business Failed, ACQ.SOMETHING_NEW',
    ],
  ])('a signed answer with %s throws the kind and message named', async (_name, response, kind, message) => {
    const no = orderNo();
    const answered = JSON.parse(JSON.stringify(response).replace('"$"', JSON.stringify(no))) as Record<string, unknown>;
    standin.setBehaviour(signed(answered));
    const err = await failure(client().query(target(no), signal()));
    expect([err.kind, err.message]).toEqual([kind, message]);
  });

  it('an answer without the method’s response member, with a repeated member, or too large is malformed', async () => {
    const no = orderNo();
    standin.setBehaviour(signed(ok, 'alipay_trade_pay_response'));
    expect((await failure(client().query(target(no), signal()))).message).toBe('The answer has no alipay_trade_query_response');
    const body = alipayAnswerBody('alipay_trade_query_response', { ...ok, out_trade_no: no });
    standin.setBehaviour({
      body: body.replace('{"alipay_trade_query_response"', '{"alipay_trade_query_response":{"code":"40004"},"alipay_trade_query_response"'),
    });
    expect((await failure(client().query(target(no), signal()))).message).toBe('The answer is not one JSON object with distinct members');
    standin.setBehaviour({ body: `${body.slice(0, -1)},"pad":"${'x'.repeat(1_100_000)}"}` });
    expect((await failure(client().query(target(no), signal()))).message).toBe('The answer is larger than 1048576 bytes');
    standin.setBehaviour({ body: '{"alipay_trade_query_response":"10000","sign":"x"}' });
    expect((await failure(client().query(target(no), signal()))).message).toBe('The alipay_trade_query_response member is not an object');
    standin.setBehaviour({ body: '{"alipay_trade_query_response":{"code":1,},"sign":"x"}' });
    expect((await failure(client().query(target(no), signal()))).message).toBe('The alipay_trade_query_response member is not JSON');
    standin.setBehaviour({ body: Buffer.concat([Buffer.from('{"alipay_trade_query_response":{"msg":"'), Buffer.from([0xc4, 0xe3]), Buffer.from('"}}')]) });
    expect((await failure(client().query(target(no), signal()))).message).toBe('The answer is not UTF-8 text');
  });

  it('an unsigned 20000 (service unavailable) is http_status, never a state', async () => {
    standin.setBehaviour({ body: '{"alipay_trade_query_response":{"code":"20000","msg":"Service Currently Unavailable","sub_code":"isp.unknow-error"}}' });
    const err = await failure(client().query(target(orderNo()), signal()));
    expect([err.kind, err.message]).toEqual(['http_status', 'Alipay failed (unsigned answer): 20000 Service Currently Unavailable, isp.unknow-error']);
  });
});

describe('Alipay client: close', () => {
  it('closes a trade waiting for its buyer (code 10000)', async () => {
    const no = orderNo();
    standin.setTrade(no, { status: 'WAIT_BUYER_PAY', totalAmount: '12.34' });
    const result = await client().close!(target(no), signal());
    expect(result.fields).toMatchObject({ code: '10000', out_trade_no: no });
    expect(standin.trade(no)?.status).toBe('TRADE_CLOSED');
    expect(standin.requests[0]).toMatchObject({
      api: 'alipay.trade.close',
      signatureValid: true,
      params: { biz_content: JSON.stringify({ out_trade_no: no }) },
    });
  });

  it('resolves for a trade Alipay does not know (nothing can be paid)', async () => {
    const result = await client().close!(target(orderNo()), signal());
    expect(result.fields).toMatchObject({ code: '40004', sub_code: 'ACQ.TRADE_NOT_EXIST' });
  });

  it('is refused for a paid trade (ACQ.TRADE_STATUS_ERROR)', async () => {
    const no = orderNo();
    standin.setTrade(no, { status: 'TRADE_SUCCESS', totalAmount: '12.34' });
    const err = await failure(client().close!(target(no), signal()));
    expect([err.kind, err.message]).toEqual(['refused', 'Alipay will not close the trade: ACQ.TRADE_STATUS_ERROR 交易状态不合法']);
    expect(standin.trade(no)?.status).toBe('TRADE_SUCCESS');
  });
});

describe('Alipay client: keys', () => {
  it.each([
    ['PKCS#8 PEM', KEYS.appPrivatePkcs8Pem],
    ['PKCS#1 PEM', KEYS.appPrivatePkcs1Pem],
    ['PKCS#8 bare base64', KEYS.appPrivatePkcs8Bare],
    ['PKCS#1 bare base64', KEYS.appPrivatePkcs1Bare],
    ['PEM with literal \\n', KEYS.appPrivatePkcs8Pem.trim().replace(/\n/g, '\\n')],
  ])('signs with ALIPAY_PRIVATE_KEY as %s', async (_name, privateKey) => {
    await client({ privateKey, publicKey: KEYS.platformPublicKeyPem }).query(target(orderNo()), signal());
    expect(standin.requests[0]!.signatureValid).toBe(true);
  });

  it('refuses keys it cannot use when it is made, without echoing them', () => {
    const made = (over: Partial<AlipayClientOptions>) => {
      try {
        client(over);
        return 'made';
      } catch (e) {
        return [(e as GatewayCallError).kind, (e as Error).message];
      }
    };
    expect(made({ privateKey: 'not a key' })).toEqual(['not_configured', 'ALIPAY_PRIVATE_KEY is not a usable RSA private key']);
    expect(made({ privateKey: KEYS.platformPublicKeyPem })).toEqual(['not_configured', 'ALIPAY_PRIVATE_KEY is not a usable RSA private key']);
    expect(made({ publicKey: KEYS.appPrivatePkcs8Pem })).toEqual([
      'not_configured',
      expect.stringMatching(/^ALIPAY_PUBLIC_KEY is not a usable RSA public key: it is a private key/),
    ]);
    expect(made({ appId: ' ' })).toEqual(['not_configured', 'ALIPAY_APP_ID is empty']);
    expect(made({ gatewayUrl: 'ftp://x' })).toEqual(['not_configured', 'ALIPAY_GATEWAY_URL must be an http(s) URL']);
  });
});

describe('Alipay stand-in: checks requests the way the gateway does', () => {
  it('refuses a request signed with a key that is not the app’s (40002 isv.invalid-signature); the client reports not_configured', async () => {
    const err = await failure(client({ privateKey: KEYS.rogue.privateKey }).query(target(orderNo()), signal()));
    expect(standin.requests[0]).toMatchObject({ signatureValid: false, code: '40002', subCode: 'isv.invalid-signature' });
    expect([err.kind, err.message]).toEqual([
      'not_configured',
      expect.stringMatching(/^Alipay refused the request: 40002 Invalid Arguments, isv.invalid-signature /),
    ]);
  });

  it('accepts its own independently signed request, and refuses it once a parameter changes after signing', async () => {
    const no = orderNo();
    standin.setTrade(no, { status: 'WAIT_BUYER_PAY', totalAmount: '3.00' });
    const params: Record<string, string> = {
      app_id: KEYS.appId,
      method: 'alipay.trade.query',
      charset: 'utf-8',
      sign_type: 'RSA2',
      timestamp: '2024-05-01 12:00:00',
      version: '1.0',
      notify_url: '',
      biz_content: JSON.stringify({ out_trade_no: no }),
    };
    params.sign = createSign('RSA-SHA256').update(alipayRequestContent(params), 'utf8').sign(KEYS.appPrivateKey, 'base64');
    const post = async (p: Record<string, string>) => {
      const res = await request(standin.url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(p).toString(),
      });
      return (await res.body.json()) as { alipay_trade_query_response: { code: string; sub_code?: string } };
    };
    expect((await post(params)).alipay_trade_query_response.code).toBe('10000');
    const tampered = await post({ ...params, biz_content: JSON.stringify({ out_trade_no: `${no}X` }) });
    expect(tampered.alipay_trade_query_response).toMatchObject({ code: '40002', sub_code: 'isv.invalid-signature' });
    expect(standin.requests.map((r) => r.signatureValid)).toEqual([true, false]);
  });

  describe('cross-checked with the official alipay-sdk', () => {
    const sdk = (privateKey: string) =>
      new AlipaySdk({ appId: KEYS.appId, privateKey, alipayPublicKey: KEYS.platformPublicKeyBare, gateway: standin.url, timeout: 5000, camelcase: false });

    it('the SDK’s signed request is accepted, and the SDK verifies the stand-in’s signed answer', async () => {
      const no = orderNo();
      standin.setTrade(no, { status: 'TRADE_SUCCESS', totalAmount: '8.80', tradeNo: 'T-SDK', extra: { store_name: 'A/B' } });
      const result = await sdk(KEYS.appPrivatePkcs1Pem).exec('alipay.trade.query', { bizContent: { out_trade_no: no } }, { validateSign: true });
      expect(result).toMatchObject({ code: '10000', trade_no: 'T-SDK', trade_status: 'TRADE_SUCCESS', total_amount: '8.80', store_name: 'A/B' });
      expect(standin.requests[0]).toMatchObject({ api: 'alipay.trade.query', signatureValid: true });
    });

    it('the SDK signing with another key is refused, and the SDK rejects a mis-signed answer', async () => {
      const rogue = KEYS.rogue.privateKey.export({ type: 'pkcs1', format: 'pem' }) as string;
      const refused = await sdk(rogue).exec('alipay.trade.query', { bizContent: { out_trade_no: orderNo() } }, { validateSign: true });
      expect(refused).toMatchObject({ code: '40002', sub_code: 'isv.invalid-signature' });
      standin.setBehaviour('mis-signed');
      await expect(
        sdk(KEYS.appPrivatePkcs1Pem).exec('alipay.trade.query', { bizContent: { out_trade_no: orderNo() } }, { validateSign: true }),
      ).rejects.toThrow(/验签失败/);
    });
  });
});
