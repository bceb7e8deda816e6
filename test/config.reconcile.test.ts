import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { problemsOf } from './helpers/config-problems.ts';

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const privateBare = privateKey.export({ type: 'pkcs1', format: 'der' }).toString('base64');
const publicBare = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');

describe('expiry and reconciliation settings', () => {
  it('defaults: ORDER_TTL 30m, first look after 1m, then 2m,5m,10m,30m, 4 in flight, the gateways production endpoints, nothing queryable', () => {
    const c = loadConfig({});
    expect(c.orderTtlMs).toBe(30 * 60_000);
    expect(c.reconcile).toMatchObject({ afterMs: 60_000, scheduleMs: [120_000, 300_000, 600_000, 1_800_000], concurrency: 4, timeoutMs: 10_000 });
    expect(c.gatewayApis).toEqual({ generic: null, genericRefundUrl: null, alipay: null, wechatpay: null, stripe: null });
  });

  it('accepts durations as short as 1s and a custom schedule', () => {
    const c = loadConfig({ ORDER_TTL: '1s', RECONCILE_AFTER: '1s', RECONCILE_SCHEDULE: '1s, 2s', RECONCILE_CONCURRENCY: '16' });
    expect(c.orderTtlMs).toBe(1000);
    expect(c.reconcile).toMatchObject({ afterMs: 1000, scheduleMs: [1000, 2000], concurrency: 16 });
  });

  it('refuses malformed durations, schedules, concurrency and base URLs, naming each variable', () => {
    const problems = problemsOf({
      ORDER_TTL: '30',
      RECONCILE_AFTER: '0s',
      RECONCILE_SCHEDULE: '1m,,2m',
      RECONCILE_CONCURRENCY: '0',
      GENERIC_QUERY_URL: 'ftp://gw.example/query',
      GENERIC_REFUND_URL: 'https://gw.example/refund#x',
      ALIPAY_GATEWAY_URL: 'https://user:pw@openapi.alipay.com/gateway.do',
      WECHATPAY_API_BASE: 'not a url',
      WECHATPAY_REFUND_NOTIFY_URL: 'http://shop.example/notify/wechatpay',
      STRIPE_API_BASE: 'https://api.stripe.com/?x=1',
    });
    for (const name of [
      'ORDER_TTL',
      'RECONCILE_AFTER',
      'RECONCILE_SCHEDULE',
      'RECONCILE_CONCURRENCY',
      'GENERIC_QUERY_URL',
      'GENERIC_REFUND_URL',
      'ALIPAY_GATEWAY_URL',
      'WECHATPAY_API_BASE',
      'WECHATPAY_REFUND_NOTIFY_URL',
      'STRIPE_API_BASE',
    ]) {
      expect(problems.some((p) => p.startsWith(`${name}:`))).toBe(true);
    }
  });

  it('enables the generic query with GENERIC_QUERY_URL, Stripe with a secret key, Alipay with its three keys', () => {
    const c = loadConfig({
      GENERIC_QUERY_URL: 'https://gw.example/query',
      STRIPE_SECRET_KEY: 'sk_test_abc123',
      ALIPAY_APP_ID: '2021000000000000',
      ALIPAY_PUBLIC_KEY: publicBare,
      ALIPAY_PRIVATE_KEY: privateBare,
    });
    expect(c.gatewayApis.generic).toEqual({ queryUrl: 'https://gw.example/query' });
    expect(c.gatewayApis.stripe).toEqual({ secretKey: 'sk_test_abc123', apiBase: 'https://api.stripe.com' });
    expect(c.gatewayApis.alipay).toMatchObject({ appId: '2021000000000000', gatewayUrl: 'https://openapi.alipay.com/gateway.do' });
    expect(loadConfig({ ALIPAY_APP_ID: 'a', ALIPAY_PUBLIC_KEY: publicBare, ALIPAY_PRIVATE_KEY: privatePem }).gatewayApis.alipay).not.toBeNull();
  });

  it('enables generic refunds with GENERIC_REFUND_URL, with or without the query URL', () => {
    const both = loadConfig({ GENERIC_QUERY_URL: 'https://gw.example/query', GENERIC_REFUND_URL: 'https://gw.example/refund' });
    expect(both.gatewayApis).toMatchObject({ generic: { queryUrl: 'https://gw.example/query' }, genericRefundUrl: 'https://gw.example/refund' });
    const alone = loadConfig({ GENERIC_REFUND_URL: 'http://127.0.0.1:8080/refund' });
    expect(alone.gatewayApis).toMatchObject({ generic: null, genericRefundUrl: 'http://127.0.0.1:8080/refund' });
    expect(loadConfig({ GENERIC_REFUND_URL: '' }).gatewayApis.genericRefundUrl).toBeNull();
  });

  it('refuses a signing key without the rest of its gateway, an unusable key, half a WeChat pair and a malformed Stripe key', () => {
    expect(problemsOf({ ALIPAY_PRIVATE_KEY: privatePem })).toContainEqual(expect.stringMatching(/^ALIPAY_PRIVATE_KEY: also needs ALIPAY_APP_ID/));
    expect(problemsOf({ ALIPAY_APP_ID: 'a', ALIPAY_PUBLIC_KEY: publicBare, ALIPAY_PRIVATE_KEY: 'bm90IGEga2V5' })).toContainEqual(
      expect.stringMatching(/^ALIPAY_PRIVATE_KEY: /),
    );
    expect(problemsOf({ WECHATPAY_MCH_PRIVATE_KEY: privatePem })).toContainEqual(expect.stringMatching(/^WECHATPAY_MCH_PRIVATE_KEY and WECHATPAY_MCH_SERIAL/));
    expect(problemsOf({ WECHATPAY_MCH_SERIAL: 'not-hex!' })).toContainEqual(expect.stringMatching(/^WECHATPAY_MCH_SERIAL: /));
    expect(problemsOf({ STRIPE_SECRET_KEY: 'pk_test_abc' })).toContainEqual(expect.stringMatching(/^STRIPE_SECRET_KEY: /));
  });

  it('a key problem never shows the key', () => {
    const problems = problemsOf({ ALIPAY_APP_ID: 'a', ALIPAY_PUBLIC_KEY: publicBare, ALIPAY_PRIVATE_KEY: 'c2VjcmV0LWJ1dC1ub3QtYS1rZXk=' });
    expect(problems.join('\n')).not.toContain('c2VjcmV0LWJ1dC1ub3QtYS1rZXk=');
  });
});

describe('.env.example', () => {
  it('names every setting the configuration reads', () => {
    const source = readFileSync(new URL('../src/config.ts', import.meta.url), 'utf8');
    const schema = source.slice(source.indexOf('const envSchema = z.object({'), source.indexOf('});', source.indexOf('const envSchema')));
    const names = [...schema.matchAll(/^ {2}([A-Z][A-Z0-9_]+):/gm)].map((m) => m[1]!);
    expect(names.length).toBeGreaterThan(40);
    const example = readFileSync(new URL('../.env.example', import.meta.url), 'utf8');
    const missing = names.filter((name) => !new RegExp(`^# ${name}=`, 'm').test(example));
    expect(missing).toEqual([]);
  });
});
