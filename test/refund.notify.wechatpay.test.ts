import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Rejection, Verification } from '../src/callbacks/gateways/gateway.ts';
import { createWechatpayGateway } from '../src/callbacks/gateways/wechatpay.ts';
import { sealResource, signNotification, type WechatpayNotification } from './helpers/wechatpay-notification.ts';
import { sdkDecrypts, sdkVerifies, wechatpaySdk } from './helpers/wechatpay-sdk.ts';

/*
 * WeChat Pay refund notifications (退款结果通知) at the adapter: signed and sealed exactly like payment notifications,
 * built here with node:crypto from WeChat's documentation, independently of the adapter, and cross-checked with
 * wechatpay-node-v3.
 */

const MCH_ID = '1900000109';
const APIV3_KEY = 'Vw3xK9pQ2mR7tY5uB8nL4cJ6hF1dS0aZ';
const platform = { serial: 'PUB_KEY_ID_0119000001092025060600001234', ...generateKeyPairSync('rsa', { modulusLength: 2048 }) };
const rogue = generateKeyPairSync('rsa', { modulusLength: 2048 });
const pem = (key: KeyObject) => key.export({ type: 'spki', format: 'pem' }).toString();
const gateway = createWechatpayGateway({ mchId: MCH_ID, apiV3Key: APIV3_KEY, platformKeys: JSON.stringify({ [platform.serial]: pem(platform.publicKey) }) });
const NOW = new Date('2025-06-06T08:05:00Z');

/** A decrypted 退款结果通知 resource: 300 of an order of 1234 refunded. */
function refundResource(overrides: Record<string, unknown> = {}) {
  return {
    mchid: MCH_ID,
    out_trade_no: 'WX20250606001',
    transaction_id: '4200000020250606001',
    out_refund_no: 'RF20250606001',
    refund_id: '50300000012025060600001',
    refund_status: 'SUCCESS',
    success_time: '2025-06-06T16:05:00+08:00',
    user_received_account: '招商银行信用卡0403',
    amount: { total: 1234, refund: 300, payer_total: 1234, payer_refund: 300 },
    ...overrides,
  };
}

interface Notification extends WechatpayNotification {
  id: string;
}

/** The envelope WeChat posts: resource sealed with AES-256-GCM under the APIv3 key, body signed with the platform key. */
function notification(resource: object | string, o: { id?: string; eventType?: string; key?: KeyObject; at?: Date; apiV3Key?: string } = {}): Notification {
  const plaintext = typeof resource === 'string' ? resource : JSON.stringify(resource);
  const id = o.id ?? `EV-${randomBytes(8).toString('hex')}`;
  const status = typeof resource === 'object' && 'refund_status' in resource ? String(resource.refund_status) : 'SUCCESS';
  const body = JSON.stringify({
    id,
    create_time: '2025-06-06T16:05:00+08:00',
    resource_type: 'encrypt-resource',
    event_type: o.eventType ?? `REFUND.${status}`,
    summary: '退款状态变更',
    resource: sealResource(plaintext, { apiV3Key: o.apiV3Key ?? APIV3_KEY, aad: 'refund' }),
  });
  return { id, ...signNotification(body, { key: o.key ?? platform.privateKey, serial: platform.serial, at: o.at ?? NOW }) };
}

const verify = async (n: Notification, now = NOW, rawBody: Buffer = Buffer.from(n.body, 'utf8')): Promise<Verification> =>
  gateway.verify({ params: JSON.parse(n.body) as Record<string, unknown>, rawBody, headers: n.headers, now });

async function rejection(n: Notification, now = NOW, rawBody?: Buffer): Promise<Rejection> {
  const v = await verify(n, now, rawBody);
  if (v.ok !== false) throw new Error(`expected a rejection, got ${JSON.stringify(v)}`);
  return v.rejection;
}

describe('WeChat Pay refund notifications: verify()', () => {
  it('REFUND.SUCCESS → a succeeded refund: our refund and order numbers, refund_id, amount.refund in minor units, the notification id as key', async () => {
    const resource = refundResource();
    const n = notification(resource);
    expect(await verify(n)).toEqual({
      ok: 'refund',
      refunds: [
        {
          orderNo: 'WX20250606001',
          refundNo: 'RF20250606001',
          gatewayRefundId: '50300000012025060600001',
          amount: { kind: 'minor', value: 300 },
          outcome: 'succeeded',
          eventKey: n.id,
          fields: resource,
        },
      ],
    });
  });

  it.each([
    ['ABNORMAL', /^ABNORMAL: /],
    ['CLOSED', /^CLOSED: /],
  ])('REFUND.%s → a failed refund, the reason naming it', async (status, reason) => {
    const v = await verify(notification(refundResource({ refund_status: status })));
    expect(v).toMatchObject({ ok: 'refund', refunds: [{ refundNo: 'RF20250606001', outcome: 'failed', failureReason: expect.stringMatching(reason) }] });
  });

  it('a repeated delivery of one notification carries the same key (the service applies it once)', async () => {
    const first = await verify(notification(refundResource(), { id: 'EV-REPEATED-1' }));
    const again = await verify(notification(refundResource(), { id: 'EV-REPEATED-1', at: new Date(NOW.getTime() + 60_000) }), new Date(NOW.getTime() + 60_000));
    expect(first.ok === 'refund' && first.refunds[0]!.eventKey).toBe('EV-REPEATED-1');
    expect(again.ok === 'refund' && again.refunds[0]!.eventKey).toBe('EV-REPEATED-1');
  });

  it('refuses a notification signed by another key, or changed after signing', async () => {
    expect(await rejection(notification(refundResource(), { key: rogue.privateKey }))).toMatchObject({ verdict: 'bad_signature', code: 'bad_signature' });
    const n = notification(refundResource());
    const changed = Buffer.from(n.body.replace('"event_type":"REFUND.SUCCESS"', '"event_type":"REFUND.CLOSED "'), 'utf8');
    expect(changed.equals(Buffer.from(n.body))).toBe(false);
    expect(await rejection(n, NOW, changed)).toMatchObject({ verdict: 'bad_signature' });
  });

  it('refuses a timestamp more than 5 minutes away as a replay', async () => {
    const old = notification(refundResource(), { at: new Date(NOW.getTime() - 301_000) });
    expect(await rejection(old)).toMatchObject({ verdict: 'replayed', code: 'replayed' });
    const future = notification(refundResource(), { at: new Date(NOW.getTime() + 301_000) });
    expect(await rejection(future)).toMatchObject({ verdict: 'replayed' });
    expect((await verify(notification(refundResource(), { at: new Date(NOW.getTime() - 299_000) }))).ok).toBe('refund');
  });

  it('refuses a resource sealed under another APIv3 key', async () => {
    const r = await rejection(notification(refundResource(), { apiV3Key: 'A'.repeat(32) }));
    expect(r).toMatchObject({ verdict: 'bad_signature', message: expect.stringContaining('WECHATPAY_APIV3_KEY') });
  });

  it("refuses another merchant's refund as forbidden, and one without mchid as malformed", async () => {
    expect(await rejection(notification(refundResource({ mchid: '1900009999' })))).toMatchObject({ verdict: 'forbidden', claimedOrderNo: 'WX20250606001' });
    const { mchid: _mchid, ...without } = refundResource();
    expect(await rejection(notification(without))).toMatchObject({ verdict: 'malformed', message: expect.stringContaining('mchid') });
  });

  it.each([
    ['no out_refund_no', { out_refund_no: undefined }, /out_refund_no/],
    ['no refund_id', { refund_id: undefined }, /refund_id/],
    ['an out_refund_no with a space', { out_refund_no: 'RF 1' }, /out_refund_no/],
    ['an order number outside the rule', { out_trade_no: 'WX/1' }, /out_trade_no/],
    ['a fractional refund', { amount: { total: 1234, refund: 2.5 } }, /amount\.refund/],
    ['a negative refund', { amount: { total: 1234, refund: -1 } }, /amount\.refund/],
    ['a refund amount as text', { amount: { total: 1234, refund: '300' } }, /amount\.refund/],
    ['no amount', { amount: undefined }, /amount/],
    ['an undocumented refund_status', { refund_status: 'REFUNDING' }, /REFUNDING is not one WeChat Pay documents/],
  ])('refuses a refund resource with %s as malformed', async (_name, change, message) => {
    const r = await rejection(notification(refundResource(change), { eventType: 'REFUND.SUCCESS' }));
    expect(r).toMatchObject({ verdict: 'malformed', code: 'validation_failed', message: expect.stringMatching(message) });
  });

  it('refuses an event_type that disagrees with refund_status, and a resource that is not JSON', async () => {
    const r = await rejection(notification(refundResource({ refund_status: 'CLOSED' }), { eventType: 'REFUND.SUCCESS' }));
    expect(r).toMatchObject({ verdict: 'malformed', message: 'event_type REFUND.SUCCESS does not agree with refund_status CLOSED' });
    expect(await rejection(notification('not json', { eventType: 'REFUND.SUCCESS' }))).toMatchObject({ verdict: 'malformed' });
  });

  it('payment notifications are unchanged: a transaction is still a payment result', async () => {
    const transaction = {
      mchid: MCH_ID,
      out_trade_no: 'WX20250606002',
      transaction_id: '4200000020250606002',
      trade_state: 'SUCCESS',
      amount: { total: 1234, currency: 'CNY' },
    };
    const v = await verify(notification(transaction, { eventType: 'TRANSACTION.SUCCESS' }));
    expect(v).toMatchObject({ ok: true, result: { orderNo: 'WX20250606002', outcome: 'paid', amount: { kind: 'minor', value: 1234 } } });
  });
});

describe('WeChat Pay refund notifications: cross-check with wechatpay-node-v3', () => {
  const sdk = wechatpaySdk(MCH_ID, APIV3_KEY, [platform]);

  it('the SDK verifies and decrypts our refund notifications; the adapter maps what it decrypts', async () => {
    const resource = refundResource({ refund_status: 'ABNORMAL', amount: { total: 1234, refund: 1234, payer_total: 1234, payer_refund: 1234 } });
    const n = notification(resource);
    expect(await sdkVerifies(sdk, n)).toBe(true);
    expect(sdkDecrypts(sdk, n, APIV3_KEY)).toEqual(resource);
    expect(await verify(n)).toMatchObject({ ok: 'refund', refunds: [{ outcome: 'failed', amount: { value: 1234 }, fields: resource }] });

    const forged = notification(resource, { key: rogue.privateKey });
    expect(await sdkVerifies(sdk, forged)).toBe(false);
    expect((await verify(forged)).ok).toBe(false);
  });
});
