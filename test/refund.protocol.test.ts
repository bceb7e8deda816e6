import { describe, expect, it } from 'vitest';
import { verifyQueryRequest } from '../src/reconcile/query-protocol.ts';
import {
  signRefundAnswer,
  signRefundNotification,
  signRefundQueryRequest,
  signRefundRequest,
  verifyRefundAnswer,
  verifyRefundRequest,
} from '../src/reconcile/refund-protocol.ts';
import { gatewaySign } from './helpers/gateway-signer.ts';
import { standinAnswer } from './helpers/generic-query-standin.ts';

/*
 * The generic refund protocol, both sides, without storage: every signature is cross-checked with the tests' own
 * signer (test/helpers/gateway-signer.ts), so the project's signer is never trusted to check itself.
 */

const SECRET = 'refund-protocol-test-secret-0123456789';
const NOW = new Date('2026-12-08T10:00:00Z');
const unix = (d: Date) => String(Math.floor(d.getTime() / 1000));
const at = (seconds: number) => new Date(NOW.getTime() + seconds * 1000);
const REFUND = { order_no: 'ORD-1001', refund_no: 'RF-1001-1', refund_amount: '3.50', currency: 'CNY' };
const ASKED = { orderNo: 'ORD-1001', refundNo: 'RF-1001-1' };

/** A form as a gateway's SDK would sign it. */
const independentlySigned = (params: Record<string, string>, key = SECRET) => ({ ...params, sign: gatewaySign(params, key, 'HMAC-SHA256') });

describe('refund request', () => {
  it('is signed over exactly the contract fields, as an independent signer computes it', () => {
    const form = signRefundRequest(REFUND, SECRET, NOW);
    expect(Object.keys(form).sort()).toEqual(['currency', 'nonce', 'order_no', 'refund_amount', 'refund_no', 'sign', 'sign_type', 'timestamp']);
    expect(form).toMatchObject({ ...REFUND, timestamp: unix(NOW), sign_type: 'HMAC-SHA256' });
    expect(form.nonce).toMatch(/^[0-9a-f]{24}$/);
    const { sign, ...unsigned } = form;
    expect(sign).toBe(gatewaySign(unsigned, SECRET, 'HMAC-SHA256'));
    expect(signRefundRequest(REFUND, SECRET, NOW).nonce).not.toBe(form.nonce);
  });

  it("round-trips, and the gateway side accepts an independent signer's request, MD5 included", () => {
    expect(verifyRefundRequest(signRefundRequest(REFUND, SECRET, NOW), SECRET, NOW)).toEqual({ ok: true, value: REFUND });
    const md5 = { ...REFUND, timestamp: unix(NOW), nonce: 'n1' };
    expect(verifyRefundRequest({ ...md5, sign: gatewaySign(md5, SECRET, 'MD5') }, SECRET, NOW)).toEqual({ ok: true, value: REFUND });
    expect(verifyRefundRequest(independentlySigned({ ...md5, sign_type: 'HMAC-SHA256' }), SECRET, NOW)).toEqual({ ok: true, value: REFUND });
  });

  it('refuses a tampered field, another key, a missing or lower-case-garbage sign', () => {
    const form = signRefundRequest(REFUND, SECRET, NOW);
    for (const [key, value] of Object.entries({ refund_amount: '350', refund_no: 'RF-1001-2', order_no: 'ORD-1002', currency: 'USD', timestamp: unix(at(1)) }))
      expect(verifyRefundRequest({ ...form, [key]: value }, SECRET, NOW)).toMatchObject({ ok: false, reason: 'bad_signature' });
    expect(verifyRefundRequest(signRefundRequest(REFUND, 'another-key', NOW), SECRET, NOW)).toMatchObject({ ok: false, reason: 'bad_signature' });
    const { sign: _sign, ...unsigned } = form;
    expect(verifyRefundRequest(unsigned, SECRET, NOW)).toMatchObject({ ok: false, reason: 'bad_signature' });
    expect(verifyRefundRequest({ ...form, sign: 'zz' }, SECRET, NOW)).toMatchObject({ ok: false, reason: 'bad_signature' });
    // An extra signed-over field cannot be slipped in either.
    expect(verifyRefundRequest({ ...form, status: 'refund_success' }, SECRET, NOW)).toMatchObject({ ok: false, reason: 'bad_signature' });
  });

  it('refuses a timestamp outside ±300 s, accepting the edges', () => {
    expect(verifyRefundRequest(signRefundRequest(REFUND, SECRET, at(-300)), SECRET, NOW).ok).toBe(true);
    expect(verifyRefundRequest(signRefundRequest(REFUND, SECRET, at(300)), SECRET, NOW).ok).toBe(true);
    expect(verifyRefundRequest(signRefundRequest(REFUND, SECRET, at(-301)), SECRET, NOW)).toMatchObject({ ok: false, reason: 'stale' });
    expect(verifyRefundRequest(signRefundRequest(REFUND, SECRET, at(301)), SECRET, NOW)).toMatchObject({ ok: false, reason: 'stale' });
    const noTimestamp = independentlySigned({ ...REFUND, nonce: 'n', sign_type: 'HMAC-SHA256' });
    expect(verifyRefundRequest(noTimestamp, SECRET, NOW)).toMatchObject({ ok: false, reason: 'stale' });
  });

  it('refuses repeated, non-text and ambiguous parameters before looking at the signature', () => {
    const form = signRefundRequest(REFUND, SECRET, NOW);
    expect(verifyRefundRequest({ ...form, refund_no: ['RF-1001-1', 'RF-X'] }, SECRET, NOW)).toMatchObject({ ok: false, reason: 'malformed' });
    expect(verifyRefundRequest({ ...form, refund_amount: { value: '3.50' } }, SECRET, NOW)).toMatchObject({ ok: false, reason: 'malformed' });
    // `&refund_amount=` inside a value could pass for another pair of the signing string.
    const swallowing = independentlySigned({ ...REFUND, order_no: 'ORD-1001&refund_amount=0.01', timestamp: unix(NOW), sign_type: 'HMAC-SHA256' });
    expect(verifyRefundRequest(swallowing, SECRET, NOW)).toMatchObject({ ok: false, reason: 'malformed', message: expect.stringContaining('order_no') });
    expect(verifyRefundRequest({ ...form, sign_type: 'SHA1' }, SECRET, NOW)).toMatchObject({ ok: false, reason: 'malformed' });
  });

  it('refuses a correctly signed request missing a field or with one malformed', () => {
    const cases: Array<Record<string, string>> = [
      { refund_no: '' },
      { order_no: '' },
      { refund_amount: '' },
      { currency: '' },
      { refund_amount: '-1' },
      { refund_amount: '1e3' },
      { currency: 'cny' },
      { refund_no: 'RF 1' },
      { refund_no: 'R'.repeat(65) },
    ];
    for (const change of cases) {
      const params = { ...REFUND, timestamp: unix(NOW), nonce: 'n', sign_type: 'HMAC-SHA256', ...change };
      expect(verifyRefundRequest(independentlySigned(params), SECRET, NOW), JSON.stringify(change)).toMatchObject({ ok: false, reason: 'malformed' });
    }
  });
});

describe('refund query', () => {
  it('asks with the query form plus refund_no; the query protocol reads the refund_no back', () => {
    const form = signRefundQueryRequest('ORD-1001', 'RF-1001-1', SECRET, NOW);
    expect(Object.keys(form).sort()).toEqual(['nonce', 'order_no', 'refund_no', 'sign', 'sign_type', 'timestamp']);
    const { sign, ...unsigned } = form;
    expect(sign).toBe(gatewaySign(unsigned, SECRET, 'HMAC-SHA256'));
    expect(verifyQueryRequest(form, SECRET, NOW)).toEqual({ ok: true, value: { orderNo: 'ORD-1001', refundNo: 'RF-1001-1' } });
    expect(verifyQueryRequest({ ...form, refund_no: 'RF-1001-2' }, SECRET, NOW)).toMatchObject({ ok: false, reason: 'bad_signature' });
    // A plain order query is still one: no refund_no.
    const { refund_no: _r, ...orderOnly } = unsigned;
    expect(verifyQueryRequest(independentlySigned(orderOnly), SECRET, NOW)).toEqual({ ok: true, value: { orderNo: 'ORD-1001', refundNo: null } });
  });

  it('verifies every status of an answer signed by the gateway side and by an independent signer', () => {
    for (const status of ['refund_success', 'refund_failed', 'refund_pending', 'refund_not_found'] as const) {
      const fields = { order_no: 'ORD-1001', refund_no: 'RF-1001-1', status, refund_amount: status === 'refund_success' ? '3.50' : undefined, currency: 'CNY' };
      const expected = { ok: true, value: fields };
      expect(verifyRefundAnswer(signRefundAnswer(fields, SECRET, NOW), SECRET, ASKED, NOW)).toEqual(expected);
      expect(verifyRefundAnswer(standinAnswer(fields, SECRET, NOW), SECRET, ASKED, NOW)).toEqual(expected);
    }
    // JSON numbers are signed as JSON writes them.
    const body: Record<string, string | number> = {
      order_no: 'ORD-1001',
      refund_no: 'RF-1001-1',
      status: 'refund_success',
      refund_amount: 12,
      timestamp: unix(NOW),
    };
    const text = JSON.stringify({ ...body, sign: gatewaySign(Object.fromEntries(Object.entries(body).map(([k, v]) => [k, String(v)])), SECRET) });
    expect(verifyRefundAnswer(text, SECRET, ASKED, NOW)).toMatchObject({ ok: true, value: { refund_amount: '12' } });
  });

  it('refuses an answer unsigned, mis-signed, tampered, stale or not JSON', () => {
    const fields = { order_no: 'ORD-1001', refund_no: 'RF-1001-1', status: 'refund_success', refund_amount: '3.50', currency: 'CNY' };
    expect(verifyRefundAnswer(standinAnswer(fields, SECRET, NOW, { unsigned: true }), SECRET, ASKED, NOW)).toMatchObject({
      ok: false,
      reason: 'bad_signature',
    });
    expect(verifyRefundAnswer(standinAnswer(fields, 'another-key', NOW), SECRET, ASKED, NOW)).toMatchObject({ ok: false, reason: 'bad_signature' });
    const tampered = { ...JSON.parse(standinAnswer(fields, SECRET, NOW)), refund_amount: '35.00' };
    expect(verifyRefundAnswer(JSON.stringify(tampered), SECRET, ASKED, NOW)).toMatchObject({ ok: false, reason: 'bad_signature' });
    expect(verifyRefundAnswer(standinAnswer(fields, SECRET, at(-301)), SECRET, ASKED, NOW)).toMatchObject({ ok: false, reason: 'stale' });
    expect(verifyRefundAnswer(standinAnswer(fields, SECRET, at(301)), SECRET, ASKED, NOW)).toMatchObject({ ok: false, reason: 'stale' });
    expect(verifyRefundAnswer('<html>busy</html>', SECRET, ASKED, NOW)).toMatchObject({ ok: false, reason: 'malformed' });
    expect(verifyRefundAnswer('[1]', SECRET, ASKED, NOW)).toMatchObject({ ok: false, reason: 'malformed' });
    const nested = JSON.stringify({ ...JSON.parse(standinAnswer(fields, SECRET, NOW)), extra: { a: 1 } });
    expect(verifyRefundAnswer(nested, SECRET, ASKED, NOW)).toMatchObject({ ok: false, reason: 'malformed' });
  });

  it('refuses a correctly signed, fresh answer about another order or another refund', () => {
    const fields = { order_no: 'ORD-1001', refund_no: 'RF-1001-1', status: 'refund_success', refund_amount: '3.50', currency: 'CNY' };
    const otherOrder = standinAnswer({ ...fields, order_no: 'ORD-1002' }, SECRET, NOW);
    expect(verifyRefundAnswer(otherOrder, SECRET, ASKED, NOW)).toMatchObject({ ok: false, reason: 'malformed', message: expect.stringContaining('ORD-1002') });
    const otherRefund = standinAnswer({ ...fields, refund_no: 'RF-1001-2' }, SECRET, NOW);
    expect(verifyRefundAnswer(otherRefund, SECRET, ASKED, NOW)).toMatchObject({
      ok: false,
      reason: 'malformed',
      message: expect.stringContaining('RF-1001-2'),
    });
    const noRefund = standinAnswer({ ...fields, refund_no: undefined }, SECRET, NOW);
    expect(verifyRefundAnswer(noRefund, SECRET, ASKED, NOW)).toMatchObject({ ok: false, reason: 'malformed' });
    // An order query's answer (status success) is not a refund answer.
    const payment = standinAnswer({ order_no: 'ORD-1001', refund_no: 'RF-1001-1', status: 'success', amount: '3.50', transaction_id: 'T1' }, SECRET, NOW);
    expect(verifyRefundAnswer(payment, SECRET, ASKED, NOW)).toMatchObject({ ok: false, reason: 'malformed', message: expect.stringContaining('status') });
  });

  it('refuses a success without a readable amount and an unreadable amount or currency in any answer', () => {
    const base = { order_no: 'ORD-1001', refund_no: 'RF-1001-1' };
    const cases: Array<Record<string, string | undefined>> = [
      { status: 'refund_success' },
      { status: 'refund_success', refund_amount: '3,50' },
      { status: 'refund_pending', refund_amount: '-3' },
      { status: 'refund_success', refund_amount: '3.50', currency: 'yuan' },
    ];
    for (const extra of cases)
      expect(verifyRefundAnswer(standinAnswer({ ...base, ...extra }, SECRET, NOW), SECRET, ASKED, NOW), JSON.stringify(extra)).toMatchObject({
        ok: false,
        reason: 'malformed',
      });
  });
});

describe('refund notification', () => {
  it('carries notify_type=refund and the contract fields, signed as an independent signer computes it', () => {
    const params = signRefundNotification({ ...REFUND, status: 'refund_success' }, SECRET, NOW);
    expect(params).toMatchObject({ notify_type: 'refund', ...REFUND, status: 'refund_success', timestamp: unix(NOW), sign_type: 'HMAC-SHA256' });
    const { sign, ...unsigned } = params;
    expect(sign).toBe(gatewaySign(unsigned, SECRET, 'HMAC-SHA256'));
    const md5 = signRefundNotification({ ...REFUND, status: 'refund_failed' }, SECRET, NOW, 'MD5');
    const { sign: md5Sign, ...md5Unsigned } = md5;
    expect(md5Unsigned).toMatchObject({ status: 'refund_failed', sign_type: 'MD5' });
    expect(md5Sign).toBe(gatewaySign(md5Unsigned, SECRET, 'MD5'));
  });
});
