import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CallbackOutcome, GatewayAdapter, Verification } from '../src/callbacks/gateways/gateway.ts';
import { createWechatpayGateway } from '../src/callbacks/gateways/wechatpay.ts';
import { ENGINES } from './helpers/engines.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';
import { sealResource, signNotification as signWith, type WechatpayNotification as Notification } from './helpers/wechatpay-notification.ts';
import { sdkDecrypts, sdkVerifies, wechatpaySdk } from './helpers/wechatpay-sdk.ts';

/*
 * Vectors are built with node:crypto the way WeChat Pay documents its API v3 notifications
 * (签名验证 / 回调报文解密), independently of the adapter's own code (test/helpers/wechatpay-notification.ts):
 *   Wechatpay-Signature = base64(SHA256withRSA(platform private key, `${timestamp}\n${nonce}\n${body}\n`))
 *   resource.ciphertext = base64(AES-256-GCM(APIv3 key, iv = resource.nonce, aad = resource.associated_data) || tag)
 */

const MCH_ID = '1900000109';
const APIV3_KEY = 'Vw3xK9pQ2mR7tY5uB8nL4cJ6hF1dS0aZ'; // 32 characters, as on the merchant platform
const rsa = () => generateKeyPairSync('rsa', { modulusLength: 2048 });
const platformA = { serial: '5157F09EFDC096DE15EBE81A47057A7232F1B8E1', ...rsa() };
const platformB = { serial: 'PUB_KEY_ID_0119000001092025060600001234', ...rsa() };
const rogue = rsa();
const pem = (key: KeyObject) => key.export({ type: 'spki', format: 'pem' }).toString();
const PLATFORM_KEYS = JSON.stringify({ [platformA.serial]: pem(platformA.publicKey), [platformB.serial]: pem(platformB.publicKey) });
const CONFIG = { mchId: MCH_ID, apiV3Key: APIV3_KEY, platformKeys: PLATFORM_KEYS };

const unix = (date: Date) => Math.floor(date.getTime() / 1000);
const NOW = new Date('2025-06-06T08:00:00Z');

/** A payment notification's `resource`, sealed under our APIv3 key with aad "transaction" unless told otherwise. */
function seal(plaintext: string, options: { key?: string; nonce?: string; aad?: string } = {}) {
  return sealResource(plaintext, { apiV3Key: options.key ?? APIV3_KEY, aad: options.aad ?? 'transaction', originalType: 'transaction', nonce: options.nonce });
}

/** A decrypted 支付成功通知 resource. */
function transaction(orderNo: string, overrides: Record<string, unknown> = {}) {
  return {
    mchid: MCH_ID,
    appid: 'wxd678efh567hg6787',
    out_trade_no: orderNo,
    transaction_id: `4200000${orderNo}`,
    trade_type: 'JSAPI',
    trade_state: 'SUCCESS',
    trade_state_desc: '支付成功',
    bank_type: 'CMC',
    attach: '',
    success_time: '2025-06-06T16:00:00+08:00',
    payer: { openid: 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o' },
    amount: { total: 1234, payer_total: 1234, currency: 'CNY', payer_currency: 'CNY' },
    ...overrides,
  };
}

/** The body and headers WeChat sends: the envelope around the sealed resource, signed with a platform key. */
function notification(
  resource: object | string,
  options: {
    id?: string;
    eventType?: string;
    key?: KeyObject;
    serial?: string;
    at?: Date;
    nonce?: string;
    sealWith?: Parameters<typeof seal>[1];
    space?: number;
  } = {},
): Notification {
  const envelope = {
    id: options.id ?? `EV-${randomBytes(8).toString('hex')}`,
    create_time: '2025-06-06T16:00:00+08:00',
    resource_type: 'encrypt-resource',
    event_type: options.eventType ?? 'TRANSACTION.SUCCESS',
    summary: '支付成功',
    resource: seal(typeof resource === 'string' ? resource : JSON.stringify(resource), options.sealWith),
  };
  return signNotification(JSON.stringify(envelope, null, options.space), options);
}

/** Signed with platform A's key at NOW unless told otherwise. */
function signNotification(body: string, options: { key?: KeyObject; serial?: string; at?: Date; nonce?: string } = {}): Notification {
  return signWith(body, { key: options.key ?? platformA.privateKey, serial: options.serial ?? platformA.serial, at: options.at ?? NOW, nonce: options.nonce });
}

/** What the route passes: the parsed body as params (when it parses), and the exact bytes as rawBody. */
function paramsOf(body: string): Record<string, unknown> {
  try {
    return JSON.parse(body) as Record<string, unknown>;
  } catch {
    return {};
  }
}

async function verify(gateway: GatewayAdapter, n: Notification, now = NOW, rawBody: Buffer = Buffer.from(n.body, 'utf8')): Promise<Verification> {
  return gateway.verify({ params: paramsOf(n.body), rawBody, headers: n.headers, now });
}

type Rejected = Extract<Verification, { ok: false }>['rejection'];
async function rejection(gateway: GatewayAdapter, n: Notification, now = NOW, rawBody?: Buffer): Promise<Rejected> {
  const v = await verify(gateway, n, now, rawBody);
  if (v.ok !== false) throw new Error(`expected a rejection, got ${JSON.stringify(v)}`);
  return v.rejection;
}

describe('WeChat Pay adapter: configuration', () => {
  const withKeys = (platformKeys: string) => () => createWechatpayGateway({ ...CONFIG, platformKeys });

  it('accepts several serials at once, PEM public keys and bare base64 SPKI', async () => {
    const bare = platformB.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
    const gateway = createWechatpayGateway({
      ...CONFIG,
      platformKeys: JSON.stringify({ [platformA.serial]: pem(platformA.publicKey), [platformB.serial]: bare }),
    });
    expect((await verify(gateway, notification(transaction('C1'), { key: platformB.privateKey, serial: platformB.serial }))).ok).toBe(true);
  });

  it('refuses invalid settings with a message naming the setting and the serial', () => {
    expect(withKeys('{not json')).toThrow(/WECHATPAY_PLATFORM_KEYS: not valid JSON/);
    expect(withKeys('[]')).toThrow(/must be a JSON object/);
    expect(withKeys('"PEM"')).toThrow(/must be a JSON object/);
    expect(withKeys('{}')).toThrow(/lists no key/);
    expect(withKeys(JSON.stringify({ SERIAL_X: 'not a key' }))).toThrow(/serial "SERIAL_X": not a valid public key or certificate/);
    expect(withKeys(JSON.stringify({ SERIAL_N: 42 }))).toThrow(/serial "SERIAL_N": the value must be a PEM/);
    expect(withKeys(JSON.stringify({ SERIAL_P: rogue.privateKey.export({ type: 'pkcs8', format: 'pem' }) }))).toThrow(
      /serial "SERIAL_P": this is a private key/,
    );
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(withKeys(JSON.stringify({ SERIAL_EC: pem(ec.publicKey) }))).toThrow(/serial "SERIAL_EC": the key is ec, but WeChat Pay signs with RSA/);
    expect(withKeys(JSON.stringify({ 'a b': pem(rogue.publicKey) }))).toThrow(/serial "a b" must be 1-128 printable ASCII/);
    expect(withKeys(JSON.stringify({ abc: pem(rogue.publicKey), ABC: pem(rogue.publicKey) }))).toThrow(/serial "ABC" is listed twice/);
    expect(() => createWechatpayGateway({ ...CONFIG, apiV3Key: 'short' })).toThrow(/WECHATPAY_APIV3_KEY: must be exactly 32 bytes/);
    expect(() => createWechatpayGateway({ ...CONFIG, apiV3Key: 'é'.repeat(32) })).toThrow(/WECHATPAY_APIV3_KEY: must be exactly 32 bytes \(it is 64\)/);
    expect(() => createWechatpayGateway({ ...CONFIG, mchId: '' })).toThrow(/WECHATPAY_MCH_ID/);
  });

  it('tolerates PEMs pasted with literal \\n sequences or raw newlines', async () => {
    const escaped = pem(platformA.publicKey).replace(/\n/g, '\\n');
    const gateway = createWechatpayGateway({ ...CONFIG, platformKeys: JSON.stringify({ [platformA.serial]: escaped }) });
    expect((await verify(gateway, notification(transaction('C2')))).ok).toBe(true);
    // A double-quoted or multi-line setting delivers the PEM's newlines raw, inside the JSON string; pretty-printed JSON too.
    const raw = `{\n  "${platformA.serial}": "${pem(platformA.publicKey).replace(/\n/g, '\r\n')}"\n}`;
    expect(() => JSON.parse(raw)).toThrow();
    const rawGateway = createWechatpayGateway({ ...CONFIG, platformKeys: raw });
    expect((await verify(rawGateway, notification(transaction('C2')))).ok).toBe(true);
  });

  const openssl = (() => {
    try {
      execFileSync('openssl', ['version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();
  // Skipped loudly on a machine without openssl; under CI=true that is a failure, as for MariaDB, Redis and Chromium.
  const CI = process.env.CI === 'true';
  if (!openssl && !CI)
    console.warn(`\n${'!'.repeat(78)}\n!! openssl is not installed: the WeChat Pay platform certificate test was NOT run.\n${'!'.repeat(78)}\n`);

  it.skipIf(!openssl && !CI)('accepts a platform certificate under its own serial number, and refuses it under another', async () => {
    expect(openssl, 'CI=true but openssl is not installed: the certificate test must run in CI').toBe(true);
    const dir = mkdtempSync(join(tmpdir(), 'wxcert-'));
    try {
      const keyFile = join(dir, 'key.pem');
      writeFileSync(keyFile, platformA.privateKey.export({ type: 'pkcs8', format: 'pem' }));
      const certificate = execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-key',
          keyFile,
          '-days',
          '1825',
          '-set_serial',
          `0x${platformA.serial}`,
          '-subj',
          '/C=CN/O=Test/CN=Test WeChat Pay platform certificate',
        ],
        { encoding: 'utf8' },
      );
      expect(certificate).toContain('BEGIN CERTIFICATE');
      const gateway = createWechatpayGateway({ ...CONFIG, platformKeys: JSON.stringify({ [platformA.serial.toLowerCase()]: certificate }) });
      expect((await verify(gateway, notification(transaction('C3')))).ok).toBe(true);
      expect(withKeys(JSON.stringify({ SERIAL_OTHER: certificate }))).toThrow(/serial "SERIAL_OTHER": the certificate's serial number is 5157F09E/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('WeChat Pay adapter: verify()', () => {
  const gateway = createWechatpayGateway(CONFIG);

  it('accepts a valid notification and maps it to a PaymentResult', async () => {
    const resource = transaction('W1');
    const n = notification(resource, { id: 'EV-W1' });
    const v = await verify(gateway, n);
    expect(v).toEqual({
      ok: true,
      result: {
        orderNo: 'W1',
        transactionId: '4200000W1',
        amount: { kind: 'minor', value: 1234 },
        currency: 'CNY',
        outcome: 'paid',
        eventKey: 'EV-W1',
        fields: resource,
      },
    });
  });

  it('verifies the exact request bytes, not the parsed parameters', async () => {
    // Pretty-printed JSON with non-ASCII text: signed as sent, byte for byte.
    const n = notification(transaction('W2', { attach: '附加数据 ü' }), { space: 2 });
    expect((await verify(gateway, n)).ok).toBe(true);
    // The same JSON re-serialised is a different byte string: the signature no longer matches.
    const compact = Buffer.from(JSON.stringify(JSON.parse(n.body)), 'utf8');
    expect((await rejection(gateway, n, NOW, compact)).verdict).toBe('bad_signature');
    // Parsed params that disagree with the raw body are ignored: only rawBody counts.
    const other = notification(transaction('W2-OTHER'));
    const v = await gateway.verify({ params: JSON.parse(other.body) as Record<string, unknown>, rawBody: Buffer.from(n.body), headers: n.headers, now: NOW });
    expect(v.ok === true && v.result.orderNo).toBe('W2');
    // No raw body at all cannot verify.
    expect((await gateway.verify({ params: JSON.parse(n.body) as Record<string, unknown>, headers: n.headers, now: NOW })).ok).toBe(false);
  });

  it('accepts both platform keys during a rotation, each under its own serial', async () => {
    const a = await verify(gateway, notification(transaction('W3'), { key: platformA.privateKey, serial: platformA.serial }));
    const b = await verify(gateway, notification(transaction('W3'), { key: platformB.privateKey, serial: platformB.serial }));
    expect([a.ok, b.ok]).toEqual([true, true]);
    // Serial look-up ignores case (certificate serials are hex); a key under the other serial does not verify.
    expect((await verify(gateway, notification(transaction('W3'), { serial: platformA.serial.toLowerCase() }))).ok).toBe(true);
    const swapped = await rejection(gateway, notification(transaction('W3'), { key: platformA.privateKey, serial: platformB.serial }));
    expect(swapped).toMatchObject({ verdict: 'bad_signature', code: 'bad_signature' });
  });

  it('refuses an unknown serial', async () => {
    const r = await rejection(gateway, notification(transaction('W4'), { serial: 'FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF' }));
    expect(r).toMatchObject({ verdict: 'bad_signature', code: 'bad_signature', message: expect.stringContaining('FFFFFFFF') });
    expect(r.message).toContain('not in WECHATPAY_PLATFORM_KEYS');
  });

  it('refuses a notification signed by another key', async () => {
    const r = await rejection(gateway, notification(transaction('W5'), { key: rogue.privateKey }));
    expect(r).toMatchObject({ verdict: 'bad_signature', code: 'bad_signature' });
    expect(r.claimedOrderNo).toBeUndefined(); // nothing in an unverified body is believed
  });

  it("refuses WeChat's signature probes (WECHATPAY/SIGNTEST/…) and garbage signatures", async () => {
    const n = notification(transaction('W5b'));
    for (const signature of ['WECHATPAY/SIGNTEST/Dv+X3EdDsnnbVl2ZlsJ7YHT1e1mxzZ+qY8ENYu2Trz0=', '', 'not base64!', 'AAAA']) {
      const v = await verify(gateway, { ...n, headers: { ...n.headers, 'wechatpay-signature': signature } });
      expect(v).toMatchObject({ ok: false, rejection: { verdict: 'bad_signature' } });
    }
  });

  it('refuses a body changed by one byte after signing', async () => {
    const n = notification(transaction('W6'));
    const bytes = Buffer.from(n.body, 'utf8');
    const at = bytes.indexOf('"id":"') + 8;
    bytes[at] = bytes[at]! ^ 0x01;
    expect(await rejection(gateway, n, NOW, bytes)).toMatchObject({ verdict: 'bad_signature', code: 'bad_signature' });
    // Changing a signed header (timestamp or nonce) breaks the signature as well.
    const nonce = await rejection(gateway, { ...n, headers: { ...n.headers, 'wechatpay-nonce': 'OTHERNONCE' } });
    expect(nonce.verdict).toBe('bad_signature');
    const ts = await rejection(gateway, { ...n, headers: { ...n.headers, 'wechatpay-timestamp': String(unix(NOW) + 1) } });
    expect(ts.verdict).toBe('bad_signature');
  });

  it('refuses timestamps more than 5 minutes in the past or the future as replays', async () => {
    const at = (seconds: number) => new Date(NOW.getTime() + seconds * 1000);
    for (const s of [-300, 300]) expect((await verify(gateway, notification(transaction('W7'), { at: at(s) }))).ok).toBe(true);
    for (const s of [-301, 301, -86_400]) {
      expect(await rejection(gateway, notification(transaction('W7'), { at: at(s) }))).toMatchObject({ verdict: 'replayed', code: 'replayed' });
    }
    // A forged stale notification is a bad signature, not a replay: the timestamp is only believed once signed.
    expect((await rejection(gateway, notification(transaction('W7'), { at: at(-3600), key: rogue.privateKey }))).verdict).toBe('bad_signature');
  });

  it('refuses a resource that fails its GCM tag: wrong APIv3 key, flipped tag, changed associated data', async () => {
    const wrongKey = await rejection(gateway, notification(transaction('W8'), { sealWith: { key: 'Zz0123456789abcdefghijklmnopqrst' } }));
    expect(wrongKey).toMatchObject({ verdict: 'bad_signature', code: 'bad_signature', message: expect.stringContaining('WECHATPAY_APIV3_KEY') });
    const otherGateway = createWechatpayGateway({ ...CONFIG, apiV3Key: 'Zz0123456789abcdefghijklmnopqrst' });
    expect((await rejection(otherGateway, notification(transaction('W8')))).verdict).toBe('bad_signature');

    // WeChat signs the envelope it sealed: rebuild the body with a broken resource and sign that.
    const envelope = JSON.parse(notification(transaction('W8')).body) as { resource: { ciphertext: string; associated_data: string; nonce: string } };
    const sealed = Buffer.from(envelope.resource.ciphertext, 'base64');
    sealed[sealed.length - 1] = sealed[sealed.length - 1]! ^ 0x80;
    const badTag = { ...envelope, resource: { ...envelope.resource, ciphertext: sealed.toString('base64') } };
    expect((await rejection(gateway, signNotification(JSON.stringify(badTag)))).verdict).toBe('bad_signature');
    const badAad = { ...envelope, resource: { ...envelope.resource, associated_data: 'certificate' } };
    expect((await rejection(gateway, signNotification(JSON.stringify(badAad)))).verdict).toBe('bad_signature');
    const badNonce = { ...envelope, resource: { ...envelope.resource, nonce: 'aaaaaaaaaaaa' } };
    expect((await rejection(gateway, signNotification(JSON.stringify(badNonce)))).verdict).toBe('bad_signature');
    const tooShort = { ...envelope, resource: { ...envelope.resource, ciphertext: 'AAAA' } };
    expect((await rejection(gateway, signNotification(JSON.stringify(tooShort)))).verdict).toBe('bad_signature');
  });

  it('accepts an empty or absent associated_data as the empty AAD', async () => {
    const absent = JSON.parse(notification(transaction('W9'), { sealWith: { aad: '' } }).body) as { resource: Record<string, unknown> };
    delete absent.resource.associated_data;
    expect((await verify(gateway, signNotification(JSON.stringify(absent)))).ok).toBe(true);
    expect((await verify(gateway, notification(transaction('W9'), { sealWith: { aad: '' } }))).ok).toBe(true);
  });

  it('refuses a foreign mchid as forbidden, recording the claimed order', async () => {
    const r = await rejection(gateway, notification(transaction('W10', { mchid: '1230000109' })));
    expect(r).toMatchObject({ verdict: 'forbidden', code: 'forbidden', claimedOrderNo: 'W10', message: expect.stringContaining('1230000109') });
    const missing = transaction('W10');
    delete (missing as Partial<typeof missing>).mchid;
    expect(await rejection(gateway, notification(missing))).toMatchObject({ verdict: 'malformed', code: 'validation_failed' });
  });

  it('maps amount.total (integer minor units) and amount.currency', async () => {
    const v = await verify(gateway, notification(transaction('W11', { amount: { total: 1, payer_total: 0, currency: 'USD', payer_currency: 'CNY' } })));
    expect(v.ok === true && { amount: v.result.amount, currency: v.result.currency }).toEqual({ amount: { kind: 'minor', value: 1 }, currency: 'USD' });
    for (const amount of [
      { total: 12.34, currency: 'CNY' },
      { total: -1, currency: 'CNY' },
      { total: '1234', currency: 'CNY' },
      { total: 1234, currency: 'cny' },
      { total: 1234 },
      {},
    ]) {
      expect(await rejection(gateway, notification(transaction('W11', { amount })))).toMatchObject({
        verdict: 'malformed',
        code: 'validation_failed',
        claimedOrderNo: 'W11',
      });
    }
  });

  it('maps trade_state: SUCCESS paid, CLOSED closed, PAYERROR failed, the rest ignored', async () => {
    const outcomes: Record<string, unknown> = {};
    for (const state of ['SUCCESS', 'CLOSED', 'PAYERROR', 'NOTPAY', 'USERPAYING', 'REFUND', 'REVOKED', 'SOMETHING_NEW']) {
      const v = await verify(gateway, notification(transaction('W12', { trade_state: state })));
      outcomes[state] = v.ok === true ? v.result.outcome : v.ok;
      if (v.ok === 'ignored') expect(v).toMatchObject({ claimedOrderNo: 'W12', message: expect.stringContaining(state) });
    }
    expect(outcomes).toEqual({
      SUCCESS: 'paid',
      CLOSED: 'closed',
      PAYERROR: 'failed',
      NOTPAY: 'ignored',
      USERPAYING: 'ignored',
      REFUND: 'ignored',
      REVOKED: 'ignored',
      SOMETHING_NEW: 'ignored',
    });
  });

  it('follows trade_state for other event types, ignores resources without one, and maps refund notifications as refunds', async () => {
    const closed = await verify(gateway, notification(transaction('W13', { trade_state: 'CLOSED' }), { eventType: 'TRANSACTION.CLOSED' }));
    expect(closed.ok === true && closed.result.outcome).toBe('closed');
    const refund = {
      mchid: MCH_ID,
      out_trade_no: 'W13',
      transaction_id: '4200000W13',
      out_refund_no: 'R1',
      refund_id: '50000000382019052709732678859',
      refund_status: 'SUCCESS',
      amount: { total: 1234, refund: 1234, payer_total: 1234, payer_refund: 1234 },
    };
    const v = await verify(gateway, notification(refund, { eventType: 'REFUND.SUCCESS' }));
    expect(v).toMatchObject({ ok: 'refund', refunds: [{ orderNo: 'W13', refundNo: 'R1', outcome: 'succeeded', amount: { value: 1234 }, fields: refund }] });
    // A resource without trade_state under any other event type is still acknowledged and ignored.
    const other = await verify(gateway, notification(refund, { eventType: 'PROFITSHARING.SUCCESS' }));
    expect(other).toMatchObject({ ok: 'ignored', claimedOrderNo: 'W13', message: expect.stringContaining('PROFITSHARING.SUCCESS'), fields: refund });
    // ...but a foreign merchant's refund is still refused.
    expect((await rejection(gateway, notification({ ...refund, mchid: '1' }, { eventType: 'REFUND.SUCCESS' }))).verdict).toBe('forbidden');
  });

  it('refuses missing or repeated headers as a bad signature', async () => {
    const n = notification(transaction('W14'));
    for (const name of ['wechatpay-serial', 'wechatpay-signature', 'wechatpay-timestamp', 'wechatpay-nonce']) {
      const headers: Record<string, string | string[]> = { ...n.headers };
      delete headers[name];
      const r = await rejection(gateway, { ...n, headers } as Notification);
      expect(r).toMatchObject({ verdict: 'bad_signature', code: 'bad_signature' });
      expect(r.message.toLowerCase()).toContain(name);
    }
    const repeated = await gateway.verify({
      params: {},
      rawBody: Buffer.from(n.body),
      headers: { ...n.headers, 'wechatpay-serial': [platformA.serial, platformB.serial] },
      now: NOW,
    });
    expect(repeated).toMatchObject({ ok: false, rejection: { verdict: 'bad_signature' } });
    // Header names are case-insensitive when the caller did not lower-case them.
    const upper = Object.fromEntries(Object.entries(n.headers).map(([k, val]) => [k.replace(/(^|-)\w/g, (c) => c.toUpperCase()), val]));
    expect((await verify(gateway, { ...n, headers: upper })).ok).toBe(true);
  });

  it('refuses well-signed but malformed bodies as malformed', async () => {
    const cases: [string, RegExp][] = [
      ['not json', /Invalid notification body/],
      ['[]', /Invalid notification body/],
      [JSON.stringify({ id: 'EV', event_type: 'TRANSACTION.SUCCESS' }), /resource/],
      [JSON.stringify({ id: 'EV', event_type: 'TRANSACTION.SUCCESS', resource: { ...seal('{}'), algorithm: 'AES_128_CBC' } }), /AES_128_CBC is not supported/],
    ];
    for (const [body, message] of cases) {
      expect(await rejection(gateway, signNotification(body), NOW, Buffer.from(body))).toMatchObject({
        verdict: 'malformed',
        code: 'validation_failed',
        message: expect.stringMatching(message),
      });
    }
    expect((await rejection(gateway, notification('plain text, not JSON'))).message).toMatch(/not a JSON object/);
    expect((await rejection(gateway, notification(transaction('bad order no!')))).verdict).toBe('malformed');
  });
});

describe('WeChat Pay adapter: cross-check with wechatpay-node-v3', () => {
  const sdk = wechatpaySdk(MCH_ID, APIV3_KEY, [platformA, platformB]);

  it('the SDK accepts our signatures and decrypts our resources; the adapter agrees', async () => {
    const gateway = createWechatpayGateway(CONFIG);
    for (const platform of [platformA, platformB]) {
      const resource = transaction('X1', { attach: '中文' });
      const n = notification(resource, { key: platform.privateKey, serial: platform.serial });
      expect(await sdkVerifies(sdk, n)).toBe(true);
      expect(sdkDecrypts(sdk, n, APIV3_KEY)).toEqual(resource);
      expect(await verify(gateway, n)).toMatchObject({ ok: true, result: { fields: resource } });
    }
    // And both refuse a rogue signature.
    const forged = notification(transaction('X1'), { key: rogue.privateKey });
    expect(await sdkVerifies(sdk, forged)).toBe(false);
    expect((await verify(gateway, forged)).ok).toBe(false);
  });
});

describe('WeChat Pay adapter: acknowledge()', () => {
  const gateway = createWechatpayGateway(CONFIG);
  const app = express();
  app.get('/ack', (req, res) => gateway.acknowledge(res, JSON.parse(String(req.query.outcome)) as CallbackOutcome));
  const ack = (outcome: CallbackOutcome) =>
    request(app)
      .get('/ack')
      .query({ outcome: JSON.stringify(outcome) });

  it('answers 204 with an empty body when applied, duplicate or ignored', async () => {
    for (const verdict of ['applied', 'duplicate', 'ignored'] as const) {
      const res = await ack({ verdict: verdict as CallbackOutcome['verdict'], status: 200, message: 'ok', orderNo: 'A1', orderStatus: 'paid' });
      expect(res.status).toBe(204);
      expect(res.text).toBe('');
      expect(res.headers['content-type']).toBeUndefined();
    }
  });

  it('answers the outcome status with {"code":"FAIL","message":…} otherwise, storage failures included', async () => {
    const cases: [CallbackOutcome['verdict'], number, CallbackOutcome['code']][] = [
      ['bad_signature', 401, 'bad_signature'],
      ['forbidden', 403, 'forbidden'],
      ['unknown_order', 404, 'not_found'],
      ['amount_mismatch', 409, 'amount_mismatch'],
      ['replayed', 409, 'replayed'],
      ['invalid_state', 409, 'invalid_state'],
      ['malformed', 400, 'validation_failed'],
      ['malformed', 503, 'unavailable'],
    ];
    for (const [verdict, status, code] of cases) {
      const res = await ack({ verdict, status, code, message: `because ${code}` });
      expect(res.status).toBe(status);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.body).toEqual({ code: 'FAIL', message: `because ${code}` });
    }
  });
});

describe.each(ENGINES)('POST /notify/wechatpay on %s', (engine) => {
  let ctx: TestContext;
  let seq = 0;
  beforeAll(async () => {
    ctx = await createTestContext(engine, { env: { WECHATPAY_MCH_ID: MCH_ID, WECHATPAY_APIV3_KEY: APIV3_KEY, WECHATPAY_PLATFORM_KEYS: PLATFORM_KEYS } });
  });
  afterAll(() => ctx.close());

  async function order(amount = '12.34', currency = 'CNY'): Promise<string> {
    const order_no = `WX${engine[0]}${++seq}`;
    const res = await ctx
      .api('post', '/api/orders')
      .send({ order_no, amount, currency, payment_method: 'wechatpay', notify_url: 'https://merchant.example/notify' });
    expect(res.status).toBe(201);
    return order_no;
  }
  /** Signed now, as WeChat sends it (the app runs on the real clock). */
  const live = (resource: object, options: Parameters<typeof notification>[1] = {}) => notification(resource, { at: new Date(), ...options });
  const post = (n: Notification) => request(ctx.app).post('/notify/wechatpay').set(n.headers).set('Content-Type', 'application/json').send(n.body);
  const orderRow = (order_no: string) => ctx.db.kysely.selectFrom('orders').selectAll().where('order_no', '=', order_no).executeTakeFirstOrThrow();
  const logs = (order_no: string) => ctx.db.kysely.selectFrom('payment_logs').selectAll().where('order_no', '=', order_no).orderBy('id').execute();
  const lastLog = () => ctx.db.kysely.selectFrom('payment_logs').selectAll().orderBy('id', 'desc').executeTakeFirstOrThrow();
  const events = (order_no: string) => ctx.db.kysely.selectFrom('notifications').selectAll().where('order_no', '=', order_no).orderBy('seq').execute();
  const expectFail = (res: request.Response, status: number) => {
    expect(res.status).toBe(status);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.body).toEqual({ code: 'FAIL', message: expect.any(String) });
  };

  it('applies a valid notification: 204 and no body, order paid, payment log, outbox event', async () => {
    const no = await order();
    const resource = transaction(no);
    const n = live(resource, { id: `EV-${no}` });
    const res = await post(n);
    expect(res.status).toBe(204);
    expect(res.text).toBe('');
    expect(await orderRow(no)).toMatchObject({ status: 'paid', transaction_id: `4200000${no}`, seq: 1, flagged: 0 });
    const [log, ...more] = await logs(no);
    expect(more).toEqual([]);
    expect(log).toMatchObject({
      gateway: 'wechatpay',
      kind: 'notify',
      verdict: 'applied',
      transaction_id: `4200000${no}`,
      amount_minor: 1234,
      currency: 'CNY',
    });
    expect(log!.callback_data).toBe(n.body);
    expect(JSON.parse(log!.payment_data!)).toEqual(resource); // the decrypted resource; callback_data keeps the sealed body
    const [event, ...others] = await events(no);
    expect(others).toEqual([]);
    expect(event).toMatchObject({ type: 'order.paid', seq: 1, url: 'https://merchant.example/notify' });
    expect(JSON.parse(event!.payload)).toMatchObject({
      type: 'order.paid',
      order_no: no,
      transaction_id: `4200000${no}`,
      amount: '12.34',
      currency: 'CNY',
      status: 'paid',
    });
  });

  it('answers 204 to a repeated notification id (a WeChat retry or a replay) and changes nothing', async () => {
    const no = await order();
    const first = live(transaction(no), { id: `EV-${no}` });
    expect((await post(first)).status).toBe(204);
    // WeChat's retry: same notification id, fresh timestamp, nonce and signature. Then a verbatim replay.
    for (const again of [live(transaction(no), { id: `EV-${no}`, key: platformB.privateKey, serial: platformB.serial }), first]) {
      const res = await post(again);
      expect(res.status).toBe(204);
      expect(res.text).toBe('');
    }
    expect(await orderRow(no)).toMatchObject({ status: 'paid', seq: 1 });
    expect(await events(no)).toHaveLength(1);
    expect((await logs(no)).map((l) => l.verdict)).toEqual(['applied', 'duplicate', 'duplicate']);
    // The notification id is remembered as the gateway's event key, in the same transaction as the payment.
    const key = await ctx.db.kysely.selectFrom('replay_nonces').selectAll().where('scope', '=', 'wechatpay:event').where('nonce', '=', `EV-${no}`).execute();
    expect(key).toHaveLength(1);
  });

  it('answers 204 to a late repeat of an earlier notification id even when its state could no longer apply', async () => {
    const no = await order();
    const failed = live(transaction(no, { trade_state: 'PAYERROR' }), { id: `EV-${no}-1` });
    expect((await post(failed)).status).toBe(204);
    expect((await post(live(transaction(no), { id: `EV-${no}-2` }))).status).toBe(204);
    // WeChat delivers at least once: the PAYERROR notification again, after the order was paid.
    const res = await post(live(transaction(no, { trade_state: 'PAYERROR' }), { id: `EV-${no}-1` }));
    expect(res.status).toBe(204);
    expect(await orderRow(no)).toMatchObject({ status: 'paid', seq: 2 });
    expect((await logs(no)).map((l) => l.verdict)).toEqual(['applied', 'applied', 'duplicate']);
  });

  it('answers 204 duplicate to another notification id for the same transaction', async () => {
    const no = await order();
    expect((await post(live(transaction(no)))).status).toBe(204);
    expect((await post(live(transaction(no)))).status).toBe(204);
    expect(await orderRow(no)).toMatchObject({ status: 'paid', seq: 1 });
    expect(await events(no)).toHaveLength(1);
    expect((await logs(no)).map((l) => l.verdict)).toEqual(['applied', 'duplicate']);
  });

  it('refuses a forged notification: 401 FAIL, order unchanged, logged as bad_signature', async () => {
    const no = await order();
    const n = live(transaction(no), { key: rogue.privateKey });
    expectFail(await post(n), 401);
    expect(await orderRow(no)).toMatchObject({ status: 'pending', seq: 0 });
    expect(await events(no)).toHaveLength(0);
    expect(await lastLog()).toMatchObject({ gateway: 'wechatpay', verdict: 'bad_signature', callback_data: n.body });
  });

  it('refuses a tampered body, a stale timestamp and a foreign merchant', async () => {
    const no = await order();
    const n = live(transaction(no));
    const tampered = { ...n, body: n.body.replace('"event_type":"TRANSACTION.SUCCESS"', '"event_type":"TRANSACTION.SUCCESX"') };
    expectFail(await post(tampered), 401);
    expectFail(await post(live(transaction(no), { at: new Date(Date.now() - 10 * 60_000) })), 409);
    expect((await lastLog()).verdict).toBe('replayed');
    expectFail(await post(live(transaction(no, { mchid: '1230000109' }))), 403);
    expect(await lastLog()).toMatchObject({ verdict: 'forbidden', order_no: no });
    expect(await orderRow(no)).toMatchObject({ status: 'pending', seq: 0 });
  });

  it('refuses an amount or currency mismatch with 409 FAIL and changes nothing', async () => {
    const no = await order();
    expectFail(await post(live(transaction(no, { amount: { total: 1233, currency: 'CNY' } }))), 409);
    expectFail(await post(live(transaction(no, { amount: { total: 1234, currency: 'USD' } }))), 409);
    expect(await orderRow(no)).toMatchObject({ status: 'pending', seq: 0 });
    expect((await logs(no)).map((l) => l.verdict)).toEqual(['amount_mismatch', 'amount_mismatch']);
    expect(await events(no)).toHaveLength(0);
    // Minor units follow the order's currency: 1234 JPY is ¥1234.
    const yen = await order('1234', 'JPY');
    expect((await post(live(transaction(yen, { amount: { total: 1234, currency: 'JPY' } })))).status).toBe(204);
  });

  it('answers 404 FAIL for an unknown order, recorded for operators', async () => {
    expectFail(await post(live(transaction('WX-NO-SUCH-ORDER'))), 404);
    expect((await logs('WX-NO-SUCH-ORDER')).map((l) => l.verdict)).toEqual(['unknown_order']);
  });

  it('follows trade_state: CLOSED closes, PAYERROR fails, NOTPAY is acknowledged and ignored', async () => {
    const closed = await order();
    expect((await post(live(transaction(closed, { trade_state: 'CLOSED' }), { eventType: 'TRANSACTION.CLOSED' }))).status).toBe(204);
    expect((await orderRow(closed)).status).toBe('closed');
    const failed = await order();
    expect((await post(live(transaction(failed, { trade_state: 'PAYERROR' })))).status).toBe(204);
    expect((await orderRow(failed)).status).toBe('failed');
    const waiting = await order();
    const res = await post(live(transaction(waiting, { trade_state: 'NOTPAY' })));
    expect(res.status).toBe(204);
    expect(await orderRow(waiting)).toMatchObject({ status: 'pending', seq: 0 });
    const [ignored, ...more] = await logs(waiting);
    expect(more).toEqual([]);
    expect(ignored).toMatchObject({ gateway: 'wechatpay', verdict: 'ignored', message: expect.stringContaining('NOTPAY') });
    expect(JSON.parse(ignored!.payment_data!)).toMatchObject({ out_trade_no: waiting, trade_state: 'NOTPAY' });
  });
});

describe('POST /notify/wechatpay without configuration', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext('sqlite');
  });
  afterAll(() => ctx.close());

  it('answers 404 JSON naming the settings to set', async () => {
    const n = notification(transaction('OFF1'), { at: new Date() });
    const res = await request(ctx.app).post('/notify/wechatpay').set(n.headers).set('Content-Type', 'application/json').send(n.body);
    expect(res.status).toBe(404);
    expect(res.body).toMatchObject({ success: false, code: 'not_found', message: expect.stringMatching(/wechatpay.*WECHATPAY_/is) });
  });
});
