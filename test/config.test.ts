import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { normalizeIp, parseIpAllowlist } from '../src/shared/ip-allowlist.ts';
import { problemsOf } from './helpers/config-problems.ts';

const SECRETS = {
  GATEWAY_SECRET: 'gateway-secret-0123456789abcdefgh',
  NOTIFY_SECRET: `whsec_${Buffer.alloc(24, 1).toString('base64')}`,
  ADMIN_PASSWORD: 'admin-password-long',
  SESSION_SECRET: 's'.repeat(32),
  // Production also wants /metrics protected (security.metrics.test.ts).
  METRICS_TOKEN: 'metrics-token-0123456789',
};

const dir = mkdtempSync(join(tmpdir(), 'pcs-config-'));
const certFile = join(dir, 'cert.pem');
const keyFile = join(dir, 'key.pem');
writeFileSync(certFile, 'cert');
writeFileSync(keyFile, 'key');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('loadConfig defaults (DESIGN A2)', () => {
  it('gives every variable its documented default from an empty environment', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      env: 'development',
      production: false,
      port: 3000,
      host: '0.0.0.0',
      tls: null,
      database: { url: 'sqlite:./data/payments.db', readUrl: null, poolSize: 16 },
      apiKeys: [],
      apiIpAllowlist: null,
      callbackIpAllowlists: {},
      trustProxy: false,
      rateLimitPerMinute: 600,
      redis: null,
      sandboxEnabled: true,
      logLevel: 'info',
      metricsToken: null,
      retentionDays: null,
      alipay: null,
      wechatpay: null,
      stripe: null,
    });
    expect(c.notify).toEqual({
      signType: 'MD5',
      retryScheduleMs: [15e3, 60e3, 240e3, 600e3, 1800e3, 3600e3, 7200e3, 21600e3, 54000e3],
      timeoutMs: 10_000,
      pollIntervalMs: 1000,
      concurrency: 16,
      expectBody: null,
      allowPrivateNetworks: true,
      worker: true,
    });
    expect(Object.values(c.secrets)).toEqual([undefined, undefined, undefined, undefined]);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('treats blank values as unset', () => {
    expect(loadConfig({ PORT: '', HOST: '  ', NOTIFY_RETRY_SCHEDULE: '' }).port).toBe(3000);
  });

  it('parses set values', () => {
    const c = loadConfig({
      PORT: '8080',
      HOST: '127.0.0.1',
      API_KEYS: ' a , b,,',
      TRUST_PROXY: 'loopback',
      RATE_LIMIT_PER_MINUTE: '5',
      REDIS_URL: 'redis://r:6379',
      NOTIFY_EXPECT_BODY: 'success',
      DATABASE_READ_URL: 'mysql://u@h/db',
    });
    expect([c.port, c.host, c.apiKeys, c.trustProxy, c.rateLimitPerMinute]).toEqual([8080, '127.0.0.1', ['a', 'b'], 'loopback', 5]);
    expect(c.redis).toEqual({ url: 'redis://r:6379', prefix: 'pcs:' });
    expect(c.notify.expectBody).toBe('success');
    expect(loadConfig({ NOTIFY_WORKER: 'false' }).notify.worker).toBe(false);
    expect(problemsOf({ NOTIFY_WORKER: 'maybe' })).toEqual([expect.stringMatching(/^NOTIFY_WORKER: /)]);
    expect(c.database.readUrl).toBe('mysql://u@h/db');
    expect(loadConfig({ TRUST_PROXY: '1' }).trustProxy).toBe(1);
    expect(loadConfig({ TRUST_PROXY: 'true' }).trustProxy).toBe(true);
  });
});

describe('loadConfig validation', () => {
  it.each(['abc', '-1', '65536', '3.5'])('rejects PORT=%s', (port) => {
    expect(problemsOf({ PORT: port })).toEqual([expect.stringMatching(/^PORT: /)]);
  });

  it('accepts PORT 0 and 65535', () => {
    expect(loadConfig({ PORT: '0' }).port).toBe(0);
    expect(loadConfig({ PORT: '65535' }).port).toBe(65535);
  });

  it('accepts mysql:// and sqlite: DATABASE_URLs only', () => {
    expect(loadConfig({ DATABASE_URL: 'sqlite::memory:' }).database.url).toBe('sqlite::memory:');
    expect(loadConfig({ DATABASE_URL: 'mysql://u:p@h:3306/db' }).database.url).toBe('mysql://u:p@h:3306/db');
    for (const bad of ['postgres://h/db', 'sqlite:', 'mysql://', 'data/x.db']) {
      expect(problemsOf({ DATABASE_URL: bad })).toEqual([expect.stringMatching(/^DATABASE_URL: .*mysql:\/\/ or sqlite:/)]);
    }
  });

  it('checks the NOTIFY_SECRET format: whsec_ + base64 of at least 24 bytes', () => {
    expect(loadConfig({ NOTIFY_SECRET: SECRETS.NOTIFY_SECRET }).secrets.NOTIFY_SECRET).toBe(SECRETS.NOTIFY_SECRET);
    const bad = [
      `whsec_${Buffer.alloc(23, 1).toString('base64')}`,
      Buffer.alloc(32, 1).toString('base64'),
      `whsk_${Buffer.alloc(32, 1).toString('base64')}`,
      `whsec_${'!'.repeat(40)}`,
      'whsec_',
    ];
    for (const value of bad) expect(problemsOf({ NOTIFY_SECRET: value })).toEqual([expect.stringMatching(/^NOTIFY_SECRET: /)]);
  });

  it('parses NOTIFY_RETRY_SCHEDULE into milliseconds', () => {
    expect(loadConfig({ NOTIFY_RETRY_SCHEDULE: '250ms, 2s,3m,1h,1d' }).notify.retryScheduleMs).toEqual([250, 2000, 180_000, 3_600_000, 86_400_000]);
  });

  it.each(['5x', ',', '1m,,2m', '1m,', '0s', '1.5m', '-1m', 'm'])('rejects NOTIFY_RETRY_SCHEDULE=%j', (schedule) => {
    expect(problemsOf({ NOTIFY_RETRY_SCHEDULE: schedule })).toEqual([expect.stringMatching(/^NOTIFY_RETRY_SCHEDULE: /)]);
  });

  it('parses CALLBACK_IP_ALLOWLIST_<GATEWAY> for known gateways and rejects unknown ones', () => {
    const c = loadConfig({ CALLBACK_IP_ALLOWLIST_GENERIC: '1.2.3.4, 10.0.0.0/8', CALLBACK_IP_ALLOWLIST_STRIPE: '' });
    expect(Object.keys(c.callbackIpAllowlists)).toEqual(['generic']);
    expect(c.callbackIpAllowlists.generic?.allows('10.9.8.7')).toBe(true);
    expect(c.callbackIpAllowlists.generic?.allows('1.2.3.5')).toBe(false);
    expect(problemsOf({ CALLBACK_IP_ALLOWLIST_FOO: '1.2.3.4' })).toEqual([expect.stringMatching(/^CALLBACK_IP_ALLOWLIST_FOO: unknown gateway/)]);
    expect(problemsOf({ CALLBACK_IP_ALLOWLIST_GENERIC: '1.2.3' })).toEqual([expect.stringMatching(/^CALLBACK_IP_ALLOWLIST_GENERIC: .*1\.2\.3/)]);
  });

  it('parses API_IP_ALLOWLIST and rejects invalid entries', () => {
    expect(loadConfig({ API_IP_ALLOWLIST: '::1' }).apiIpAllowlist?.entries).toEqual(['::1']);
    expect(problemsOf({ API_IP_ALLOWLIST: '999.1.1.1' })).toEqual([expect.stringMatching(/^API_IP_ALLOWLIST: .*999\.1\.1\.1/)]);
  });

  it('enforces the TLS pair rule and that the files exist', () => {
    expect(loadConfig({ TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile }).tls).toEqual({ certFile, keyFile });
    expect(problemsOf({ TLS_CERT_FILE: certFile })).toEqual(['TLS_CERT_FILE and TLS_KEY_FILE: set both or neither']);
    expect(problemsOf({ TLS_KEY_FILE: keyFile })).toEqual(['TLS_CERT_FILE and TLS_KEY_FILE: set both or neither']);
    expect(problemsOf({ TLS_CERT_FILE: join(dir, 'missing.pem'), TLS_KEY_FILE: keyFile })).toEqual([
      expect.stringMatching(/^TLS_CERT_FILE: file does not exist/),
    ]);
  });

  it('reports unusable gateway keys as configuration problems, with the others', () => {
    const problems = problemsOf({ PORT: 'x', ALIPAY_APP_ID: '2021', ALIPAY_PUBLIC_KEY: 'not-a-key', WECHATPAY_PLATFORM_KEYS: '{"S1":"nope"}' });
    expect(problems).toEqual([
      expect.stringMatching(/^PORT: /),
      expect.stringMatching(/^ALIPAY_PUBLIC_KEY[: ].*public key/),
      expect.stringMatching(/^WECHATPAY_PLATFORM_KEYS: .*S1/),
    ]);
    expect(problemsOf({ WECHATPAY_PLATFORM_KEYS: '{broken' })).toEqual([expect.stringMatching(/^WECHATPAY_PLATFORM_KEYS: .*JSON/)]);
  });

  it('lists several problems at once, including checks that run after field parsing', () => {
    const problems = problemsOf({
      PORT: 'abc',
      NOTIFY_RETRY_SCHEDULE: '5x',
      API_IP_ALLOWLIST: '999.1.1.1',
      TLS_CERT_FILE: certFile,
      CALLBACK_IP_ALLOWLIST_FOO: '1.1.1.1',
    });
    for (const name of ['PORT', 'NOTIFY_RETRY_SCHEDULE', 'API_IP_ALLOWLIST', 'TLS_CERT_FILE and TLS_KEY_FILE', 'CALLBACK_IP_ALLOWLIST_FOO']) {
      expect(problems.filter((p) => p.startsWith(`${name}: `))).toHaveLength(1);
    }
    const err = (() => {
      try {
        loadConfig({ PORT: 'abc', LOG_LEVEL: 'loud' });
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err?.message).toMatch(/^Invalid configuration:\n {2}- (PORT|LOG_LEVEL): .*\n {2}- (PORT|LOG_LEVEL): /);
  });
});

describe('loadConfig per NODE_ENV', () => {
  it('requires every secret in production and never generates them', () => {
    const problems = problemsOf({ NODE_ENV: 'production' });
    expect(problems.map((p) => p.split(':')[0]).sort()).toEqual(['ADMIN_PASSWORD', 'GATEWAY_SECRET', 'METRICS_TOKEN', 'NOTIFY_SECRET', 'SESSION_SECRET']);
    expect(problemsOf({ NODE_ENV: 'production', ...SECRETS, NOTIFY_SECRET: ' ' })).toEqual([expect.stringMatching(/^NOTIFY_SECRET: required in production/)]);
  });

  it('reports production secret problems together with other invalid values', () => {
    const problems = problemsOf({ NODE_ENV: 'production', PORT: 'abc' });
    expect(problems.some((p) => p.startsWith('PORT: '))).toBe(true);
    expect(problems.filter((p) => /required in production/.test(p))).toHaveLength(5); // the four secrets and METRICS_TOKEN
  });

  it('wants a 12-character admin password in production', () => {
    expect(problemsOf({ NODE_ENV: 'production', ...SECRETS, ADMIN_PASSWORD: 'elevenchars' })).toEqual([
      'ADMIN_PASSWORD: must be at least 12 characters in production',
    ]);
  });

  it('turns private networks and the sandbox off in production only, unless set explicitly', () => {
    const prod = loadConfig({ NODE_ENV: 'production', ...SECRETS });
    expect([prod.production, prod.notify.allowPrivateNetworks, prod.sandboxEnabled]).toEqual([true, false, false]);
    const test = loadConfig({ NODE_ENV: 'test' });
    expect([test.production, test.notify.allowPrivateNetworks, test.sandboxEnabled]).toEqual([false, true, true]);
    const forced = loadConfig({ NODE_ENV: 'production', ...SECRETS, NOTIFY_ALLOW_PRIVATE_NETWORKS: 'true', SANDBOX_ENABLED: '1' });
    expect([forced.notify.allowPrivateNetworks, forced.sandboxEnabled]).toEqual([true, true]);
    const dev = loadConfig({ NOTIFY_ALLOW_PRIVATE_NETWORKS: 'false', SANDBOX_ENABLED: '0' });
    expect([dev.notify.allowPrivateNetworks, dev.sandboxEnabled]).toEqual([false, false]);
    expect(problemsOf({ SANDBOX_ENABLED: 'yes' })).toEqual([expect.stringMatching(/^SANDBOX_ENABLED: /)]);
    expect(problemsOf({ NODE_ENV: 'staging' })).toEqual([expect.stringMatching(/^NODE_ENV: /)]);
  });
});

describe('parseIpAllowlist', () => {
  it('matches single IPv4 and IPv6 addresses exactly', () => {
    const list = parseIpAllowlist('192.0.2.10, 2001:db8::1');
    expect(list.entries).toEqual(['192.0.2.10', '2001:db8::1']);
    expect(list.allows('192.0.2.10')).toBe(true);
    expect(list.allows('192.0.2.11')).toBe(false);
    expect(list.allows('2001:db8::1')).toBe(true);
    expect(list.allows('2001:0db8:0:0:0:0:0:1')).toBe(true);
    expect(list.allows('2001:db8::2')).toBe(false);
  });

  it('matches IPv4 and IPv6 CIDR ranges', () => {
    const list = parseIpAllowlist('10.0.0.0/8,2001:db8::/32');
    expect(list.allows('10.255.0.1')).toBe(true);
    expect(list.allows('11.0.0.1')).toBe(false);
    expect(list.allows('2001:db8:ffff::1')).toBe(true);
    expect(list.allows('2001:db9::1')).toBe(false);
  });

  it('treats IPv4-mapped IPv6 addresses as IPv4, both as client and as entry', () => {
    expect(parseIpAllowlist('10.0.0.0/8').allows('::ffff:10.1.2.3')).toBe(true);
    expect(parseIpAllowlist('10.0.0.0/8').allows('::ffff:11.1.2.3')).toBe(false);
    expect(parseIpAllowlist('::ffff:10.1.2.3').allows('10.1.2.3')).toBe(true);
    expect(normalizeIp('::FFFF:127.0.0.1')).toBe('127.0.0.1');
    expect(normalizeIp('::1')).toBe('::1');
  });

  it('never allows a missing or malformed client address', () => {
    const list = parseIpAllowlist('0.0.0.0/0');
    expect(list.allows('8.8.8.8')).toBe(true);
    expect(list.allows(undefined)).toBe(false);
    expect(list.allows('')).toBe(false);
    expect(list.allows('not-an-ip')).toBe(false);
  });

  it.each(['', ' , ', '999.1.1.1', '1.2.3', 'example.com', '10.0.0.0/33', '2001:db8::/129', '10.0.0.0/', '10.0.0.0/abc', '10.0.0.0/8/8', '10.0.0.0/-1'])(
    'rejects %j',
    (value) => {
      expect(() => parseIpAllowlist(value)).toThrow(/IP address|prefix length|at least one/);
    },
  );
});
