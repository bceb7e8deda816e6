import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { bootstrapSecrets } from '../src/system/secrets.service.ts';
import { getConfigValues } from '../src/settings/system-config.repository.ts';
import { systemClock } from '../src/shared/time.ts';
import { ENGINES } from './helpers/engines.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const TSX = join(ROOT, 'node_modules', '.bin', 'tsx');

/** `npm run secrets`: each database's generated development secrets, shown and reset. */
describe.each(ENGINES)('npm run secrets on %s', (engine) => {
  let ctx: TestContext;
  let env: Record<string, string>;
  beforeAll(async () => {
    ctx = await createTestContext(engine);
    env = { PATH: process.env.PATH!, NODE_ENV: 'development', DATABASE_URL: ctx.database.url, API_KEYS: 'dev-key-0123456789abcdefghij' };
  });
  afterAll(() => ctx.close());

  const secrets = (args: string[], extra: Record<string, string> = {}) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(TSX, ['src/cli/secrets.ts', ...args], { cwd: ROOT, env: { ...env, ...extra } }, (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code) : 0, stdout, stderr }),
      );
    });

  it('shows what is not generated yet, then the generated values, and forgets one on reset', async () => {
    const before = await secrets([]);
    expect(before.code, before.stderr).toBe(0);
    expect(before.stdout).toMatch(/GATEWAY_SECRET\s+not generated yet/);

    await bootstrapSecrets(loadConfig({ NODE_ENV: 'development', DATABASE_URL: ctx.database.url, API_KEYS: env.API_KEYS! }), ctx.db, systemClock);
    const stored = await getConfigValues(ctx.db.kysely, ['secret.GATEWAY_SECRET', 'secret.ADMIN_PASSWORD']);
    const shown = await secrets([]);
    expect(shown.stdout).toContain(`generated: ${stored.get('secret.GATEWAY_SECRET')}`);
    expect(shown.stdout).toContain(`generated: ${stored.get('secret.ADMIN_PASSWORD')}`);
    // A value from the environment wins and is never printed.
    const fromEnv = await secrets([], { GATEWAY_SECRET: 'env-gateway-secret-0123456789abcdef' });
    expect(fromEnv.stdout).toMatch(/GATEWAY_SECRET\s+set in the environment/);
    expect(fromEnv.stdout).not.toContain('env-gateway-secret');

    const reset = await secrets(['reset', 'GATEWAY_SECRET']);
    expect(reset.code, reset.stderr).toBe(0);
    expect(reset.stdout).toContain('Forgot 1 generated secret');
    const after = await getConfigValues(ctx.db.kysely, ['secret.GATEWAY_SECRET', 'secret.ADMIN_PASSWORD']);
    expect(after.has('secret.GATEWAY_SECRET')).toBe(false);
    expect(after.get('secret.ADMIN_PASSWORD')).toBe(stored.get('secret.ADMIN_PASSWORD'));
  });

  it('refuses in production and on unknown arguments', async () => {
    expect((await secrets(['reset', 'NOPE'])).code).toBe(2);
    const production = await secrets([], { NODE_ENV: 'production' });
    expect(production.code).toBe(1);
  });
});
