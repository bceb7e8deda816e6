import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { alipayPublicKey, gatewayKeyProblems, wechatpayPlatformKeys } from '../src/callbacks/gateways/gateway-keys.ts';
import { ConfigError, loadConfig } from '../src/config.ts';

const pem = () => generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();

describe('gateway keys: parsed by the gateways, once, and reported with the configuration', () => {
  it('parses each key text once: the configuration check and the adapters share the parsed key', () => {
    const alipay = pem();
    const wechat = JSON.stringify({ SERIAL1: pem() });
    loadConfig({ ALIPAY_APP_ID: '2021', ALIPAY_PUBLIC_KEY: alipay, WECHATPAY_PLATFORM_KEYS: wechat });
    const key = alipayPublicKey(alipay);
    expect(key.asymmetricKeyType).toBe('rsa');
    expect(alipayPublicKey(alipay)).toBe(key);
    expect(wechatpayPlatformKeys(wechat)).toBe(wechatpayPlatformKeys(wechat));
    expect(alipayPublicKey(pem())).not.toBe(key);
  });

  it('names each unusable key by its variable, skips blank ones, and never remembers a failure', () => {
    expect(gatewayKeyProblems({ ALIPAY_PUBLIC_KEY: '  ', WECHATPAY_PLATFORM_KEYS: undefined })).toEqual([]);
    const problems = gatewayKeyProblems({ ALIPAY_PUBLIC_KEY: 'not-a-key', WECHATPAY_PLATFORM_KEYS: '{broken' });
    expect(problems).toEqual([
      expect.stringMatching(/^ALIPAY_PUBLIC_KEY is not a usable RSA public key/),
      expect.stringMatching(/^WECHATPAY_PLATFORM_KEYS: not valid JSON/),
    ]);
    expect(gatewayKeyProblems({ ALIPAY_PUBLIC_KEY: 'not-a-key' })).toEqual([problems[0]]);
    expect(() => alipayPublicKey('not-a-key')).toThrow(/ALIPAY_PUBLIC_KEY/);
  });

  it('loadConfig lists a bad key with the other problems', () => {
    try {
      loadConfig({ PORT: 'x', ALIPAY_PUBLIC_KEY: 'not-a-key' });
      expect.unreachable('loadConfig accepted a bad key');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).problems).toEqual([expect.stringMatching(/^PORT: /), expect.stringMatching(/^ALIPAY_PUBLIC_KEY /)]);
    }
  });
});
