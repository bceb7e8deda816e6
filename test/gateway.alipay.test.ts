import { createSign, generateKeyPairSync, type KeyObject } from 'node:crypto';
import express from 'express';
import request from 'supertest';
import { AlipaySdk } from 'alipay-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAlipayGateway, verifyAlipayParams } from '../src/callbacks/gateways/alipay.ts';
import type { CallbackOutcome, Verification } from '../src/callbacks/gateways/gateway.ts';
import { ENGINES } from './helpers/engines.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';
import { field, resultKind } from './helpers/pages.ts';

const APP_ID = '2021000122600000';

/** An RSA 2048 key pair standing in for Alipay's (the test signs as Alipay would). */
function keyPair() {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    privateKey,
    pem: publicKey.export({ type: 'spki', format: 'pem' }) as string,
    /** The form the Alipay console shows the Alipay public key in: bare base64 of the SPKI DER. */
    bare: (publicKey.export({ type: 'spki', format: 'der' }) as Buffer).toString('base64'),
    pkcs1Pem: privateKey.export({ type: 'pkcs1', format: 'pem' }) as string,
  };
}
const ALIPAY = keyPair();
const OTHER = keyPair();

/**
 * Alipay's documented RSA2 notification signature, written independently of the adapter: drop sign and
 * sign_type, drop empty values, sort by key, join `k=v` with `&`, SHA256withRSA, base64.
 */
function alipaySign(params: Record<string, string>, key: KeyObject = ALIPAY.privateKey): string {
  const content = Object.keys(params)
    .filter((k) => k !== 'sign' && k !== 'sign_type' && params[k] !== '')
    .sort()
    .map((k) => `${k}=${params[k]}`)
    .join('&');
  return createSign('RSA-SHA256').update(content, 'utf8').sign(key, 'base64');
}
const signed = (params: Record<string, string>, key?: KeyObject): Record<string, string> => ({ ...params, sign_type: 'RSA2', sign: alipaySign(params, key) });

let seq = 0;
const uid = (prefix: string) => `${prefix}${Date.now().toString(36)}${(++seq).toString(36)}`;

/** A trade_status_sync notification as Alipay posts it (no empty values: the SDK, unlike the docs, signs those too). */
function notification(orderNo: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    app_id: APP_ID,
    auth_app_id: APP_ID,
    buyer_id: '2088102177846875',
    buyer_pay_amount: '12.34',
    charset: 'utf-8',
    fund_bill_list: '[{"amount":"12.34","fundChannel":"ALIPAYACCOUNT"}]',
    gmt_create: '2024-05-01 12:00:00',
    gmt_payment: '2024-05-01 12:00:05',
    notify_id: uid('2024050100222120005'),
    notify_time: '2024-05-01 12:00:06',
    notify_type: 'trade_status_sync',
    out_trade_no: orderNo,
    receipt_amount: '12.34',
    seller_id: '2088102177296610',
    subject: '测试订单 a+b=c&d %41',
    total_amount: '12.34',
    trade_no: uid('2024050122001446870'),
    trade_status: 'TRADE_SUCCESS',
    version: '1.0',
    ...extra,
  };
}

const form = (params: Record<string, string>) => new URLSearchParams(params).toString();
const verifyWith = (gateway: ReturnType<typeof createAlipayGateway>, params: Record<string, unknown>, rawBody?: Buffer) =>
  gateway.verify({ params, rawBody, headers: {}, now: new Date() }) as Verification;

describe('Alipay RSA2 test signer, cross-checked with the official alipay-sdk', () => {
  const sdk = new AlipaySdk({ appId: APP_ID, privateKey: ALIPAY.pkcs1Pem, alipayPublicKey: ALIPAY.bare });

  it('checkNotifySignV2 and checkNotifySign accept what the test signs', () => {
    const params = signed(notification('SDK1'));
    expect(sdk.checkNotifySignV2(params)).toBe(true);
    // checkNotifySign (V1) URI-decodes values once more, so it only agrees when no value holds a '%'.
    expect(sdk.checkNotifySign(signed(notification('SDK1', { subject: '测试订单 a+b=c&d' })))).toBe(true);
    // Alipay signs without sign_type; the SDK also accepts the parameters with sign_type removed.
    const { sign_type: _t, ...withoutType } = params;
    expect(sdk.checkNotifySignV2(withoutType)).toBe(true);
  });

  it('the SDK refuses a signature by another key and a tampered amount', () => {
    expect(sdk.checkNotifySignV2(signed(notification('SDK2'), OTHER.privateKey))).toBe(false);
    expect(sdk.checkNotifySignV2({ ...signed(notification('SDK3')), total_amount: '0.01' })).toBe(false);
  });

  it('the adapter accepts exactly what the SDK accepts', () => {
    const gateway = createAlipayGateway({ appId: APP_ID, publicKey: ALIPAY.bare });
    const good = signed(notification('SDK4'));
    const bad = { ...good, subject: 'changed' };
    expect(sdk.checkNotifySignV2(good)).toBe(true);
    expect(verifyWith(gateway, good).ok).toBe(true);
    expect(sdk.checkNotifySignV2(bad)).toBe(false);
    expect(verifyWith(gateway, bad).ok).toBe(false);
  });
});

describe('Alipay adapter: verify()', () => {
  const gateway = createAlipayGateway({ appId: APP_ID, publicKey: ALIPAY.pem });

  it.each([
    ['TRADE_SUCCESS', 'paid'],
    ['TRADE_FINISHED', 'paid'],
    ['TRADE_CLOSED', 'closed'],
  ])('%s → %s, with order, transaction, decimal amount, notify_id as event key and fields', (tradeStatus, outcome) => {
    const params = signed(notification('A1', { trade_status: tradeStatus }));
    const v = verifyWith(gateway, params);
    expect(v).toEqual({
      ok: true,
      result: {
        orderNo: 'A1',
        transactionId: params.trade_no,
        amount: { kind: 'decimal', value: '12.34' },
        currency: undefined,
        outcome,
        eventKey: params.notify_id,
        fields: Object.fromEntries(Object.entries(params).filter(([k]) => k !== 'sign')),
      },
    });
  });

  it('accepts the public key as bare base64, as PEM, and as PEM with literal \\n (a .env habit)', () => {
    const params = signed(notification('A2'));
    for (const publicKey of [ALIPAY.bare, ALIPAY.pem, ALIPAY.pem.replace(/\n/g, '\\n'), `\n  ${ALIPAY.bare.replace(/(.{64})/g, '$1\n')}  \n`]) {
      expect(verifyWith(createAlipayGateway({ appId: APP_ID, publicKey }), params).ok).toBe(true);
    }
  });

  it('skips empty values in the signature and signs values exactly as form-decoded', () => {
    const params = { ...notification('A3'), passback_params: '', body: '' };
    expect(verifyWith(gateway, { ...params, sign_type: 'RSA2', sign: alipaySign(params) }).ok).toBe(true);
    // Also without sign_type, and through a form round trip (+, &, =, % and Chinese in the subject).
    const withoutType = { ...params, sign: alipaySign(params) };
    expect(verifyWith(gateway, Object.fromEntries(new URLSearchParams(form(withoutType)))).ok).toBe(true);
  });

  it('refuses a signature by another key (bad_signature)', () => {
    const v = verifyWith(gateway, signed(notification('A4'), OTHER.privateKey));
    expect(v).toEqual({
      ok: false,
      rejection: { verdict: 'bad_signature', code: 'bad_signature', message: expect.stringContaining('signature'), claimedOrderNo: 'A4' },
    });
  });

  it.each([
    ['total_amount changed after signing', (p: Record<string, string>) => ({ ...p, total_amount: '0.01' })],
    ['trade_status changed after signing', (p: Record<string, string>) => ({ ...p, trade_status: 'TRADE_SUCCESS' })],
    ['a parameter added after signing', (p: Record<string, string>) => ({ ...p, extra: 'x' })],
    ['sign missing', (p: Record<string, string>) => ({ ...p, sign: '' })],
    ['sign not base64', (p: Record<string, string>) => ({ ...p, sign: 'not base64!' })],
  ])('refuses a tampered notification: %s', (_name, tamper) => {
    const v = verifyWith(gateway, tamper(signed(notification('A5', { trade_status: 'TRADE_CLOSED' }))));
    expect(v.ok).toBe(false);
    if (v.ok === false) expect(v.rejection).toMatchObject({ verdict: 'bad_signature', code: 'bad_signature', claimedOrderNo: 'A5' });
  });

  it('refuses a well-signed notification for another app_id (forbidden)', () => {
    const v = verifyWith(gateway, signed(notification('A6', { app_id: '2021000999999999' })));
    expect(v).toEqual({
      ok: false,
      rejection: { verdict: 'forbidden', code: 'forbidden', message: expect.stringContaining('ALIPAY_APP_ID'), claimedOrderNo: 'A6' },
    });
  });

  it.each([
    ['an array value', (p: Record<string, unknown>) => ({ ...p, out_trade_no: ['A7', 'A8'] })],
    ['an object value', (p: Record<string, unknown>) => ({ ...p, extra: { a: 1 } })],
    ['a __proto__ key', (p: Record<string, unknown>) => JSON.parse(JSON.stringify(p).replace('{', '{"__proto__":{"x":"1"},')) as Record<string, unknown>],
    ['a boolean', (p: Record<string, unknown>) => ({ ...p, extra: true })],
    ['sign_type RSA (SHA1)', (p: Record<string, unknown>) => ({ ...p, sign_type: 'RSA' })],
  ])('refuses malformed parameters: %s (malformed, validation_failed)', (_name, build) => {
    const v = verifyWith(gateway, build(signed(notification('A7'))));
    expect(v.ok).toBe(false);
    if (v.ok === false) expect(v.rejection).toMatchObject({ verdict: 'malformed', code: 'validation_failed' });
  });

  it.each([
    ['out_trade_no', { out_trade_no: 'has spaces' }],
    ['total_amount', { total_amount: '1e3' }],
    ['trade_no', { trade_no: '' }],
    ['app_id', { app_id: '' }],
  ])('refuses a well-signed notification with a bad %s', (_name, extra) => {
    const v = verifyWith(gateway, signed(notification('A9', extra)));
    expect(v.ok).toBe(false);
    if (v.ok === false) expect(v.rejection).toMatchObject({ verdict: 'malformed', code: 'validation_failed' });
  });

  it.each(['WAIT_BUYER_PAY', 'SOMETHING_NEW', ''])('ignores trade_status %j (ok: ignored), naming the order', (tradeStatus) => {
    const v = verifyWith(gateway, signed(notification('A10', { trade_status: tradeStatus })));
    expect(v).toEqual({ ok: 'ignored', message: expect.stringContaining('ignored'), claimedOrderNo: 'A10' });
  });

  it('takes the currency from trans_currency when a cross-border notification states it', () => {
    const v = verifyWith(gateway, signed(notification('A11', { trans_currency: 'USD' })));
    expect(v.ok === true && v.result.currency).toBe('USD');
  });

  it('decodes a GBK form body in GBK, as Alipay signed it', () => {
    const params = notification('A12', { charset: 'GBK', subject: '中文' });
    const sign = alipaySign(params);
    // 中文 in GBK is D6 D0 CE C4; the route has already (mis)decoded the body as UTF-8.
    const raw = form({ ...params, subject: 'SUBJECT', sign_type: 'RSA2', sign }).replace('subject=SUBJECT', 'subject=%D6%D0%CE%C4');
    const asUtf8 = Object.fromEntries(new URLSearchParams(raw));
    const v = verifyWith(gateway, asUtf8, Buffer.from(raw));
    expect(v.ok).toBe(true);
    if (v.ok === true) expect(v.result.fields?.subject).toBe('中文');
    expect(verifyWith(gateway, asUtf8, Buffer.from(raw.replace('charset=GBK', 'charset=EBCDIC-42'))).ok).toBe(false);
  });

  it('refuses unusable keys and app ids at construction, with a clear message and without echoing the key', () => {
    expect(() => createAlipayGateway({ appId: APP_ID, publicKey: 'not a key' })).toThrow(/ALIPAY_PUBLIC_KEY is not a usable RSA public key/);
    expect(() => createAlipayGateway({ appId: APP_ID, publicKey: 'QUJD' })).toThrow(/ALIPAY_PUBLIC_KEY/);
    expect(() => createAlipayGateway({ appId: APP_ID, publicKey: ALIPAY.pkcs1Pem })).toThrow(/private key/);
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
    expect(() => createAlipayGateway({ appId: APP_ID, publicKey: ec })).toThrow(/RSA/);
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
    expect(() => createAlipayGateway({ appId: APP_ID, publicKey: small })).toThrow(/1024-bit/);
    expect(() => createAlipayGateway({ appId: ' ', publicKey: ALIPAY.pem })).toThrow(/ALIPAY_APP_ID/);
    try {
      createAlipayGateway({ appId: APP_ID, publicKey: `${ALIPAY.bare}!` });
    } catch (err) {
      expect((err as Error).message).not.toContain(ALIPAY.bare.slice(0, 20));
    }
  });

  it('verifyAlipayParams (the return URL check) needs no trade_status: signature and app_id only', () => {
    const ret = {
      app_id: APP_ID,
      auth_app_id: APP_ID,
      charset: 'utf-8',
      method: 'alipay.trade.page.pay.return',
      out_trade_no: 'R1',
      seller_id: '2088102177296610',
      timestamp: '2024-05-01 12:00:07',
      total_amount: '12.34',
      trade_no: '2024050122001446870500000001',
      version: '1.0',
    };
    const params = signed(ret);
    const { sign: _s, ...fields } = params;
    expect(verifyAlipayParams(params, { appId: APP_ID, publicKey: ALIPAY.bare })).toEqual({ ok: true, params: { ...params }, fields, orderNo: 'R1' });
    expect(gateway.verifyParams(Object.fromEntries(new URLSearchParams(form(params))))).toMatchObject({ ok: true, orderNo: 'R1' });
    expect(gateway.verifyParams({ ...params, total_amount: '1.00' })).toMatchObject({ ok: false, rejection: { verdict: 'bad_signature' } });
    expect(gateway.verifyParams(signed({ ...ret, app_id: 'other' }))).toMatchObject({ ok: false, rejection: { verdict: 'forbidden', code: 'forbidden' } });
  });
});

describe('Alipay adapter: acknowledge()', () => {
  const gateway = createAlipayGateway({ appId: APP_ID, publicKey: ALIPAY.pem });
  const app = express();
  app.get('/ack', (req, res) => gateway.acknowledge(res, JSON.parse(String(req.query.o)) as CallbackOutcome));
  const ack = (o: Partial<CallbackOutcome>) =>
    request(app)
      .get('/ack')
      .query({ o: JSON.stringify({ message: 'm', ...o }) });

  it.each([
    ['applied', 200, undefined, 'success'],
    ['duplicate', 200, undefined, 'success'],
    ['ignored', 200, undefined, 'success'],
    ['bad_signature', 401, 'bad_signature', 'fail'],
    ['forbidden', 403, 'forbidden', 'fail'],
    ['malformed', 400, 'validation_failed', 'fail'],
    ['unknown_order', 404, 'not_found', 'fail'],
    ['amount_mismatch', 409, 'amount_mismatch', 'fail'],
    ['invalid_state', 409, 'invalid_state', 'fail'],
    ['replayed', 409, 'replayed', 'fail'],
    ['applied', 503, 'unavailable', 'fail'],
  ])('%s (%d %s) → plain text %s with that status', async (verdict, status, code, body) => {
    const res = await ack({ verdict: verdict as CallbackOutcome['verdict'], status, code: code as CallbackOutcome['code'] });
    expect(res.status).toBe(status);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expect(res.text).toBe(body);
  });
});

describe.each(ENGINES)('POST /notify/alipay on %s', (engine) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(engine, { env: { ALIPAY_APP_ID: APP_ID, ALIPAY_PUBLIC_KEY: ALIPAY.bare } });
  });
  afterAll(() => ctx.close());

  async function order(amount = '12.34', extra: Record<string, unknown> = {}): Promise<string> {
    const order_no = uid('AL');
    const res = await ctx
      .api('post', '/api/orders')
      .send({ order_no, amount, payment_method: 'alipay', notify_url: 'https://merchant.example/notify', ...extra });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return order_no;
  }
  const notify = (params: Record<string, string>) => request(ctx.app).post('/notify/alipay').type('form').send(form(params));
  const orderRow = (no: string) => ctx.db.kysely.selectFrom('orders').selectAll().where('order_no', '=', no).executeTakeFirstOrThrow();
  const logs = (no: string) => ctx.db.kysely.selectFrom('payment_logs').selectAll().where('order_no', '=', no).orderBy('id').execute();
  const events = (no: string) => ctx.db.kysely.selectFrom('notifications').selectAll().where('order_no', '=', no).orderBy('seq').execute();
  function expectReply(res: request.Response, status: number, body: 'success' | 'fail') {
    expect(res.status, res.text).toBe(status);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expect(res.text).toBe(body);
  }

  it('applies a valid TRADE_SUCCESS: success, order paid, payment log and outbox event', async () => {
    const no = await order();
    const params = signed(notification(no));
    expectReply(await notify(params), 200, 'success');
    const row = await orderRow(no);
    expect(row).toMatchObject({ status: 'paid', transaction_id: params.trade_no, seq: 1, flagged: 0 });
    expect(row.paid_at).not.toBeNull();
    const [log] = await logs(no);
    expect(log).toMatchObject({ gateway: 'alipay', kind: 'notify', verdict: 'applied', transaction_id: params.trade_no, amount_minor: 1234, currency: 'CNY' });
    expect(log!.callback_data).toContain(`out_trade_no=${no}`);
    expect(log!.payment_data).toContain(params.notify_id);
    expect(log!.payment_data).not.toContain(params.sign);
    const [event] = await events(no);
    expect(event).toMatchObject({ type: 'order.paid', seq: 1 });
    expect(JSON.parse(event!.payload)).toMatchObject({ order_no: no, transaction_id: params.trade_no, amount: '12.34', currency: 'CNY', status: 'paid' });
  });

  it('answers success to a repeat (same notify_id) and to the same trade with a new notify_id, changing nothing', async () => {
    const no = await order();
    const first = signed(notification(no));
    expectReply(await notify(first), 200, 'success');
    expectReply(await notify(first), 200, 'success');
    const finished = signed(notification(no, { trade_no: first.trade_no!, trade_status: 'TRADE_FINISHED' }));
    expectReply(await notify(finished), 200, 'success');
    expect(await orderRow(no)).toMatchObject({ status: 'paid', seq: 1 });
    expect(await events(no)).toHaveLength(1);
    expect((await logs(no)).map((l) => l.verdict)).toEqual(['applied', 'duplicate', 'duplicate']);
  });

  it.each([
    ['forged by another key', 401, 'bad_signature', (no: string) => signed(notification(no), OTHER.privateKey)],
    ['tampered total_amount', 401, 'bad_signature', (no: string) => ({ ...signed(notification(no)), total_amount: '0.01' })],
    ['foreign app_id', 403, 'forbidden', (no: string) => signed(notification(no, { app_id: '2021000999999999' }))],
    ['signed wrong amount', 409, 'amount_mismatch', (no: string) => signed(notification(no, { total_amount: '0.01' }))],
  ])('%s → fail (%d), order unchanged, logged as %s', async (_name, status, verdict, build) => {
    const no = await order();
    expectReply(await notify(build(no)), status, 'fail');
    expect(await orderRow(no)).toMatchObject({ status: 'pending', transaction_id: null, seq: 0 });
    expect(await events(no)).toHaveLength(0);
    expect((await logs(no)).map((l) => l.verdict)).toEqual([verdict]);
  });

  it('answers fail (404) for an unknown order and records it', async () => {
    const no = uid('NOPE');
    expectReply(await notify(signed(notification(no))), 404, 'fail');
    expect((await logs(no)).map((l) => l.verdict)).toEqual(['unknown_order']);
  });

  it('TRADE_CLOSED closes a pending order', async () => {
    const no = await order();
    expectReply(await notify(signed(notification(no, { trade_status: 'TRADE_CLOSED' }))), 200, 'success');
    expect(await orderRow(no)).toMatchObject({ status: 'closed', seq: 1 });
    expect((await logs(no)).map((l) => l.verdict)).toEqual(['applied']);
  });

  it('WAIT_BUYER_PAY is acknowledged with success and changes nothing', async () => {
    const no = await order();
    expectReply(await notify(signed(notification(no, { trade_status: 'WAIT_BUYER_PAY' }))), 200, 'success');
    expect(await orderRow(no)).toMatchObject({ status: 'pending', seq: 0 });
    expect(await events(no)).toHaveLength(0);
    expect((await logs(no)).map((l) => l.verdict)).toEqual(['ignored']);
  });

  it('malformed parameters → fail (400)', async () => {
    const no = await order();
    const params = signed(notification(no));
    const res = await request(ctx.app)
      .post('/notify/alipay')
      .type('form')
      .send(`${form(params)}&out_trade_no=${no}`);
    expectReply(res, 400, 'fail');
    expect(await orderRow(no)).toMatchObject({ status: 'pending', seq: 0 });
  });
});

describe.each(ENGINES)('GET /callback/alipay (return URL) on %s', (engine) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(engine, { env: { ALIPAY_APP_ID: APP_ID, ALIPAY_PUBLIC_KEY: ALIPAY.pem } });
  });
  afterAll(() => ctx.close());

  /** What Alipay appends to return_url: signed, and without trade_status. */
  const returnParams = (orderNo: string, extra: Record<string, string> = {}) =>
    signed({
      app_id: APP_ID,
      auth_app_id: APP_ID,
      charset: 'utf-8',
      method: 'alipay.trade.page.pay.return',
      out_trade_no: orderNo,
      seller_id: '2088102177296610',
      timestamp: '2024-05-01 12:00:07',
      total_amount: '12.34',
      trade_no: uid('2024050122001446870'),
      version: '1.0',
      ...extra,
    });
  const visit = (params: Record<string, string>) => request(ctx.app).get(`/callback/alipay?${form(params)}`);
  const snapshot = async (no: string) => ({
    order: await ctx.db.kysely.selectFrom('orders').select(['status', 'seq', 'transaction_id']).where('order_no', '=', no).executeTakeFirstOrThrow(),
    events: (await ctx.db.kysely.selectFrom('notifications').select('id').where('order_no', '=', no).execute()).length,
  });

  it('verifies the signature and shows the order as it stands, changing nothing', async () => {
    const no = uid('ALR');
    expect(
      (await ctx.api('post', '/api/orders').send({ order_no: no, amount: '12.34', payment_method: 'alipay', notify_url: 'https://merchant.example/n' })).status,
    ).toBe(201);
    const before = await snapshot(no);
    const res = await visit(returnParams(no));
    expect(res.status, res.text.slice(0, 300)).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(field(res.text, 'order_no')).toBe(no);
    expect(resultKind(res.text)).toBe('pending');
    expect(await snapshot(no)).toEqual(before);
    // Once the notification has paid it, the same return shows it paid.
    expectSuccess(
      await request(ctx.app)
        .post('/notify/alipay')
        .type('form')
        .send(form(signed(notification(no)))),
    );
    expect(resultKind((await visit(returnParams(no))).text)).toBe('success');
  });

  it('refuses a forged or tampered return (400 page), changing nothing', async () => {
    const no = uid('ALR');
    expect((await ctx.api('post', '/api/orders').send({ order_no: no, amount: '12.34', payment_method: 'alipay' })).status).toBe(201);
    const before = await snapshot(no);
    const tampered = { ...returnParams(no), total_amount: '0.01' };
    const { sign: _s, ...unsigned } = returnParams(no);
    const forged = signed(unsigned, OTHER.privateKey);
    for (const params of [tampered, forged]) {
      const res = await visit(params);
      expect(res.status).toBe(400);
      expect(resultKind(res.text)).toBe('rejected');
    }
    expect(await snapshot(no)).toEqual(before);
  });
});

function expectSuccess(res: request.Response) {
  expect(res.status, res.text).toBe(200);
  expect(res.text).toBe('success');
}

describe.each(ENGINES)('Alipay adapter off on %s', (engine) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(engine);
  });
  afterAll(() => ctx.close());

  it('POST /notify/alipay answers 404 JSON naming the variables to set', async () => {
    const res = await request(ctx.app)
      .post('/notify/alipay')
      .type('form')
      .send(form(signed(notification('OFF1'))));
    expect(res.status).toBe(404);
    expect(res.body).toMatchObject({ success: false, code: 'not_found', message: expect.stringMatching(/ALIPAY_APP_ID|ALIPAY_PUBLIC_KEY/) });
  });
});
