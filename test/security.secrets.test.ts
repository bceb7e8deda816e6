import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { PROJECT_ROOT } from '../src/shared/paths.ts';
import { configWeaknesses, weakPasswordReason } from '../src/system/secret-strength.ts';
import { createTestContext, TEST_ENV, type TestContext } from './helpers/context.ts';
import { startService, stopAllServices } from './helpers/service-process.ts';
import { problemsOf } from './helpers/config-problems.ts';

/** Production refuses weak secrets (listed together, never echoed); development starts and warns; doctor says the same. */

const hex = (bytes: number) => randomBytes(bytes).toString('hex');
const STRONG = {
  NODE_ENV: 'production',
  API_KEYS: `pcs_${hex(16)},pcs_${hex(16)}`,
  GATEWAY_SECRET: hex(32),
  NOTIFY_SECRET: `whsec_${randomBytes(32).toString('base64')}`,
  ADMIN_PASSWORD: 'plum-orbit-cascade-wharf-19',
  SESSION_SECRET: hex(32),
  METRICS_TOKEN: hex(16),
};

const WEAK = {
  API_KEYS: `${STRONG.API_KEYS.split(',')[0]},x`,
  GATEWAY_SECRET: '12345678',
  ADMIN_PASSWORD: 'Password2024',
  STRIPE_WEBHOOK_SECRET: 'stripe-secret',
};

const named = (problems: string[], name: string) => problems.filter((p) => p.startsWith(`${name}: `));

describe('production refuses weak secrets', () => {
  it('starts with strong values', () => {
    const config = loadConfig(STRONG);
    expect(config.production).toBe(true);
    expect(configWeaknesses(config)).toEqual([]);
  });

  it('lists every weak value at once, each with its own message, never the value', () => {
    const env = { ...STRONG, ...WEAK, NOTIFY_SECRET: `whsec_${Buffer.alloc(16, 5).toString('base64')}`, SESSION_SECRET: hex(15) };
    const problems = problemsOf(env);
    expect(named(problems, 'API_KEYS')).toEqual(['API_KEYS: each key must be at least 24 characters in production (key 2 of 2 is shorter)']);
    expect(named(problems, 'GATEWAY_SECRET')).toEqual(['GATEWAY_SECRET: must be at least 32 characters in production']);
    expect(named(problems, 'ADMIN_PASSWORD')).toEqual([expect.stringMatching(/^ADMIN_PASSWORD: must not be a commonly used password/)]);
    expect(named(problems, 'STRIPE_WEBHOOK_SECRET')).toEqual([expect.stringMatching(/^STRIPE_WEBHOOK_SECRET: must be the endpoint's signing secret \(whsec_/)]);
    expect(named(problems, 'NOTIFY_SECRET')).toEqual([expect.stringMatching(/at least 24 bytes/)]);
    expect(named(problems, 'SESSION_SECRET')).toEqual([expect.stringMatching(/at least 32 characters/)]);
    expect(problems).toHaveLength(6);
    for (const value of [WEAK.GATEWAY_SECRET, WEAK.ADMIN_PASSWORD, WEAK.STRIPE_WEBHOOK_SECRET, env.SESSION_SECRET])
      expect(problems.join('\n')).not.toContain(value);
  });

  it.each([
    ['elevenchars', /must be at least 12 characters in production/],
    ['PASSWORD1234', /commonly used password/],
    ['P@ssw0rd2024!', /commonly used password/],
    ['adminadmin123', /commonly used password/],
    ['correcthorsebatterystaple', /commonly used password/],
    ['iloveyou12345', /commonly used password/],
    ['zzzzzzzzzzzzzz', /one character repeated/],
    ['abcabcabcabc', /short pattern repeated/],
    ['abcdefghijklm', /simple sequence/],
    ['123456789012', /simple sequence/],
    ['9876543210987', /simple sequence/],
    ['QWERTYUIOPASDF', /simple sequence/],
    ['1qaz2wsx3edc4rfv', /simple sequence/],
  ])('refuses the admin password %s (compared case-insensitively)', (password, reason) => {
    const problems = named(problemsOf({ ...STRONG, ADMIN_PASSWORD: password }), 'ADMIN_PASSWORD');
    expect(problems).toEqual([expect.stringMatching(reason)]);
  });

  it.each(['plum-orbit-cascade-wharf-19', 'Tq8!vR2#mZ5@', randomBytes(18).toString('base64'), 'correct horse battery staple mango'])(
    'accepts the admin password %s',
    (password) => {
      expect(weakPasswordReason(password)).toBeNull();
      expect(loadConfig({ ...STRONG, ADMIN_PASSWORD: password }).secrets.ADMIN_PASSWORD).toBe(password);
    },
  );

  it('wants 24-character API keys and 32-character gateway and session secrets', () => {
    expect(named(problemsOf({ ...STRONG, API_KEYS: 'x' }), 'API_KEYS')).toEqual([
      'API_KEYS: each key must be at least 24 characters in production (key 1 of 1 is shorter)',
    ]);
    expect(loadConfig({ ...STRONG, API_KEYS: 'k'.repeat(4) + hex(10) }).apiKeys).toHaveLength(1);
    expect(named(problemsOf({ ...STRONG, API_KEYS: hex(11) + 'k' }), 'API_KEYS')).toHaveLength(1);
    expect(named(problemsOf({ ...STRONG, GATEWAY_SECRET: hex(15) + 'g' }), 'GATEWAY_SECRET')).toHaveLength(1);
    expect(loadConfig({ ...STRONG, GATEWAY_SECRET: hex(16) }).secrets.GATEWAY_SECRET).toHaveLength(32);
  });

  it('accepts a real Stripe signing secret and refuses anything else in production', () => {
    expect(loadConfig({ ...STRONG, STRIPE_WEBHOOK_SECRET: `whsec_${randomBytes(24).toString('base64url')}` }).stripe).not.toBeNull();
    expect(loadConfig({ ...STRONG, STRIPE_WEBHOOK_SECRET: `whsec_${hex(32)}` }).stripe).not.toBeNull();
    for (const bad of ['whsec_short', `sk_live_${hex(16)}`])
      expect(named(problemsOf({ ...STRONG, STRIPE_WEBHOOK_SECRET: bad }), 'STRIPE_WEBHOOK_SECRET')).toHaveLength(1);
  });
});

describe('development starts with weak secrets, and says so', () => {
  const dev = { ...STRONG, ...WEAK, NODE_ENV: 'development', METRICS_TOKEN: undefined };

  it('loads the configuration and lists each weakness as a warning', () => {
    const config = loadConfig(dev);
    expect(config.production).toBe(false);
    const warnings = configWeaknesses(config);
    expect(warnings.map((w) => w.name)).toEqual(['API_KEYS', 'GATEWAY_SECRET', 'ADMIN_PASSWORD', 'STRIPE_WEBHOOK_SECRET']);
    expect(JSON.stringify(warnings)).not.toContain(WEAK.GATEWAY_SECRET);
    expect(JSON.stringify(warnings)).not.toContain(WEAK.ADMIN_PASSWORD);
  });

  it('the test environment of the suite has no weak secret (tests exercise the production rules)', () => {
    expect(configWeaknesses(loadConfig(TEST_ENV))).toEqual([]);
    expect(() => loadConfig({ ...TEST_ENV, NODE_ENV: 'production', METRICS_TOKEN: hex(16) })).not.toThrow();
  });

  describe('a development service', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pcs-weak-'));
    afterAll(async () => {
      await stopAllServices();
      rmSync(dir, { recursive: true, force: true });
    });

    it('listens and logs one warning per weak secret, without the values', async () => {
      const env = Object.fromEntries(
        Object.entries({ ...dev, DATABASE_URL: `sqlite:${join(dir, 'dev.db')}`, LOG_LEVEL: 'warn' }).filter((e): e is [string, string] => e[1] !== undefined),
      );
      const service = await startService('weak-dev', env);
      service.signal('SIGTERM');
      expect((await service.exit()).code).toBe(0);
      const warnings = service
        .output()
        .split('\n')
        .filter((line) => line.includes('weak secret'));
      expect(warnings.map((line) => /"setting":"(\w+)"/.exec(line)?.[1])).toEqual(['API_KEYS', 'GATEWAY_SECRET', 'ADMIN_PASSWORD', 'STRIPE_WEBHOOK_SECRET']);
      for (const value of [WEAK.GATEWAY_SECRET, WEAK.ADMIN_PASSWORD, WEAK.STRIPE_WEBHOOK_SECRET]) expect(service.output()).not.toContain(value);
    });
  });
});

describe('npm run doctor on weak secrets', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext('sqlite');
  });
  afterAll(() => ctx?.close());

  /** Runs the doctor with exactly `env`; the check lines (✓ passed, ⚠ passed with a warning, ✗ failed). */
  const doctor = (env: Record<string, string | undefined>) =>
    new Promise<{ code: number | null; lines: string[]; out: string }>((resolve, reject) => {
      const child = spawn(join(PROJECT_ROOT, 'node_modules/.bin/tsx'), ['src/cli/doctor.ts'], {
        cwd: PROJECT_ROOT,
        env: { PATH: process.env.PATH, TZ: 'UTC', ...env } as NodeJS.ProcessEnv,
      });
      let out = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (out += c.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, out, lines: out.split('\n').filter((l) => /^[✓⚠✗] /.test(l)) }));
    });
  const line = (lines: string[], name: string) => lines.find((l) => l.slice(2).startsWith(`${name}:`));

  it('warns in development (exit 0) and fails in production (exit 1) on the same weak values', async () => {
    const weak = {
      ...TEST_ENV,
      DATABASE_URL: ctx.database.url,
      GATEWAY_SECRET: 'gateway-secret-20chr',
      ADMIN_PASSWORD: 'Password2024',
      API_KEYS: 'api-key-of-20-chars!',
    };
    const dev = await doctor({ ...weak, NODE_ENV: 'development' });
    expect(dev.code, dev.out).toBe(0);
    expect(line(dev.lines, 'secret GATEWAY_SECRET')).toMatch(
      /^⚠ secret GATEWAY_SECRET: set, 20 characters; production refuses it: must be at least 32 characters$/,
    );
    expect(line(dev.lines, 'secret ADMIN_PASSWORD')).toMatch(/^⚠ .*production refuses it: must not be a commonly used password/);
    expect(line(dev.lines, 'API keys')).toMatch(/^⚠ API keys: .*production refuses it: each key must be at least 24 characters \(key 1 of 1 is shorter\)$/);
    expect(line(dev.lines, 'secret SESSION_SECRET')).toMatch(/^✓ /);
    expect(dev.out).toMatch(/doctor: all \d+ checks passed \(3 with warnings\)/);

    const prod = await doctor({ ...weak, NODE_ENV: 'production', METRICS_TOKEN: hex(16) });
    expect(prod.code).toBe(1);
    expect(line(prod.lines, 'configuration')).toMatch(/^✗ configuration: 3 problems$/);
    expect(line(prod.lines, 'secret GATEWAY_SECRET')).toMatch(/^✗ .*too weak: 20 characters, at least 32 needed/);
    expect(line(prod.lines, 'secret ADMIN_PASSWORD')).toMatch(/^✗ .*commonly used password/);
    expect(line(prod.lines, 'API keys')).toBe('✗ API keys: 1 of the keys in API_KEYS is shorter than 24 characters');
    for (const value of [weak.GATEWAY_SECRET, weak.ADMIN_PASSWORD, weak.API_KEYS]) expect(dev.out + prod.out).not.toContain(value);
  });
});
