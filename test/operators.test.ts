import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { createOperatorService } from '../src/operators/operator.service.ts';
import { hashPassword, verifyPassword } from '../src/operators/password.ts';
import { systemClock } from '../src/shared/time.ts';
import { bootstrapSecrets } from '../src/system/secrets.service.ts';
import { ADMIN_PASSWORD } from './helpers/admin.ts';
import { createTestContext, TEST_ENV, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';

describe('operator password hashes', () => {
  it('are scrypt with their parameters and a random salt, and verify only the same password', async () => {
    const [a, b] = await Promise.all([hashPassword('correct horse battery'), hashPassword('correct horse battery')]);
    expect(a).toMatch(/^scrypt\$32768\$8\$1\$[\w-]{22}\$[\w-]{43}$/);
    expect(a).not.toBe(b);
    expect(await verifyPassword('correct horse battery', a)).toBe(true);
    expect(await verifyPassword('correct horse batter', a)).toBe(false);
    expect(await verifyPassword('Correct horse battery', a)).toBe(false);
    for (const given of [undefined, '', ['correct horse battery'], 'x'.repeat(1025)]) expect(await verifyPassword(given, a)).toBe(false);
    for (const stored of ['', 'plain', 'scrypt$3$8$1$c2FsdHNhbHQ$aGFzaA', `scrypt$${2 ** 24}$8$1$c2FsdHNhbHRzYWx0$${'A'.repeat(43)}`]) {
      expect(await verifyPassword('correct horse battery', stored)).toBe(false);
    }
  });
});

describe.each(ENGINES)('the first console account on %s', (engine) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(engine);
  });
  afterAll(() => ctx.close());

  const restart = (adminPassword: string) =>
    bootstrapSecrets(loadConfig({ ...TEST_ENV, DATABASE_URL: ctx.database.url, ADMIN_PASSWORD: adminPassword }), ctx.db, systemClock);

  it('is admin with ADMIN_PASSWORD (not one-time) when no account exists; later starts change nothing', async () => {
    const operators = createOperatorService({ db: ctx.db, clock: systemClock });
    expect((await operators.list()).map((o) => [o.username, o.role, o.mustChangePassword, o.disabled])).toEqual([['admin', 'admin', false, false]]);
    const row = await ctx.db.kysely.selectFrom('operators').selectAll().executeTakeFirstOrThrow();
    expect(await verifyPassword(ADMIN_PASSWORD, row.password_hash)).toBe(true);
    expect(row.password_hash).not.toContain(ADMIN_PASSWORD);

    await restart('another-admin-password-31');
    const after = await ctx.db.kysely.selectFrom('operators').selectAll().execute();
    expect(after).toEqual([row]);
    expect(await verifyPassword('another-admin-password-31', after[0]!.password_hash)).toBe(false);

    // Not even when admin itself is gone: another account exists.
    await operators.create({ username: 'ops.lead', role: 'admin', password: 'fennel-anchor-violet-88' }, { operator: 'cli' });
    await ctx.db.kysely.deleteFrom('operators').where('username', '=', 'admin').execute();
    await restart(ADMIN_PASSWORD);
    expect((await operators.list()).map((o) => o.username)).toEqual(['ops.lead']);
    const created = await ctx.db.kysely.selectFrom('audit_log').select(['actor', 'target']).where('action', '=', 'operator.create').orderBy('id').execute();
    expect(created).toEqual([
      { actor: 'system', target: 'operator:admin' },
      { actor: 'cli', target: 'operator:ops.lead' },
    ]);
  });

  it('refuses bad usernames, roles, names differing only in case, and weak chosen passwords', async () => {
    const operators = createOperatorService({ db: ctx.db, clock: systemClock, passwordPolicy: (p) => (p.length < 12 ? 'is short' : null) });
    const cli = { operator: 'cli' };
    for (const username of ['', 'a b', 'x'.repeat(65), 'zoë', 'a/b']) {
      await expect(operators.create({ username, role: 'viewer' }, cli)).rejects.toMatchObject({ code: 'validation_failed' });
    }
    await expect(operators.create({ username: 'carl', role: 'root' as never }, cli)).rejects.toMatchObject({ code: 'validation_failed' });
    await expect(operators.create({ username: 'carl', role: 'viewer', password: 'short' }, cli)).rejects.toMatchObject({ code: 'validation_failed' });
    const { password, oneTime, operator } = await operators.create({ username: 'carl', role: 'viewer' }, cli);
    expect([oneTime, operator.mustChangePassword, password.length]).toEqual([true, true, 20]);
    await expect(operators.create({ username: 'Carl', role: 'viewer' }, cli)).rejects.toMatchObject({ code: 'invalid_state' });
    await expect(operators.create({ username: 'carl', role: 'viewer' }, cli)).rejects.toMatchObject({ code: 'invalid_state' });
    expect((await operators.changeRole('carl', 'operator', cli)).role).toBe('operator');
  });
});
