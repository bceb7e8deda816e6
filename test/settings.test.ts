import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { loadConfig, type Config } from '../src/config.ts';
import { openDatabase, type Database } from '../src/db/database.ts';
import { migrateToLatest } from '../src/db/migrator.ts';
import { createRuntimeSettings, type RuntimeSettings } from '../src/settings/runtime-settings.ts';
import { RETRY_SCHEDULE_KEY, RUNTIME_KEYS, SettingValidationError, allowlistKey } from '../src/settings/settings.keys.ts';
import { AppError } from '../src/shared/errors.ts';
import type { Logger } from '../src/shared/logger.ts';
import { toDbTime } from '../src/shared/time.ts';
import { TEST_ENV } from './helpers/context.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';
import { ENGINES } from './helpers/engines.ts';

/** Issue 6 item 5: runtime settings (retry schedule, callback allowlists) in system_config, without restart. */

const fakeLogger = () => ({ warn: vi.fn(), info: vi.fn(), error: vi.fn(), debug: vi.fn() });

describe.each(ENGINES)('runtime settings on %s', (engine) => {
  let database: TestDatabase;
  let db: Database;
  let config: Config;
  let logger: ReturnType<typeof fakeLogger>;
  let now = new Date('2026-03-01T10:00:00.000Z');
  const clock = () => now;
  const created: RuntimeSettings[] = [];
  const make = (refreshMs?: number) => {
    const settings = createRuntimeSettings({ db, config, clock, logger: logger as unknown as Logger, refreshMs });
    created.push(settings);
    return settings;
  };
  const storedRows = () =>
    db.kysely
      .selectFrom('system_config')
      .select(['config_key', 'config_value'])
      .where('config_key', 'in', [...RUNTIME_KEYS])
      .orderBy('config_key')
      .execute();
  const auditRows = () => db.kysely.selectFrom('audit_log').selectAll().orderBy('id').execute();
  const clear = async () => {
    await db.kysely
      .deleteFrom('system_config')
      .where('config_key', 'in', [...RUNTIME_KEYS])
      .execute();
    await db.kysely.deleteFrom('audit_log').execute();
  };

  beforeAll(async () => {
    database = await createTestDatabase(engine);
    config = loadConfig({
      ...TEST_ENV,
      DATABASE_URL: database.url,
      NOTIFY_RETRY_SCHEDULE: '10s, 1m,2h',
      CALLBACK_IP_ALLOWLIST_GENERIC: '10.0.0.0/8, 2001:db8::/32',
    });
    db = openDatabase(database.url);
    await migrateToLatest(db);
  });
  beforeEach(async () => {
    logger = fakeLogger();
    await clear();
  });
  afterAll(async () => {
    await Promise.all(created.map((s) => s.stop()));
    await db?.close();
    await database?.drop();
  });

  it('starts from the configuration: the environment values are the defaults', async () => {
    const settings = make();
    expect(settings.retryScheduleMs()).toEqual([10_000, 60_000, 7_200_000]);
    expect(settings.callbackAllowlist('generic')?.allows('10.2.3.4')).toBe(true);
    expect(settings.callbackAllowlist('generic')?.allows('192.168.1.1')).toBe(false);
    expect(settings.callbackAllowlist('stripe')).toBeNull();
    await settings.refresh();
    expect(settings.retryScheduleMs()).toEqual([10_000, 60_000, 7_200_000]);
    const states = Object.fromEntries(settings.states().map((s) => [s.key, s]));
    expect(states[RETRY_SCHEDULE_KEY]).toMatchObject({
      source: 'environment',
      stored: null,
      defaultText: '10s,1m,2h',
      effectiveText: '10s,1m,2h',
      envName: 'NOTIFY_RETRY_SCHEDULE',
    });
    expect(states[allowlistKey('generic')]).toMatchObject({
      source: 'environment',
      defaultText: '10.0.0.0/8, 2001:db8::/32',
      envName: 'CALLBACK_IP_ALLOWLIST_GENERIC',
    });
    expect(states[allowlistKey('stripe')]).toMatchObject({ source: 'environment', defaultText: null, effectiveText: null });
    expect(Object.keys(states)).toEqual([
      RETRY_SCHEDULE_KEY,
      ...['generic', 'sandbox', 'alipay', 'wechatpay', 'stripe'].map((g) => `callback.ip_allowlist.${g}`),
    ]);
  });

  it('refuses invalid values with the parsers of config.ts: nothing stored, no audit row', async () => {
    const settings = make();
    const actor = { operator: 'Ann' };
    for (const [key, value] of [
      [RETRY_SCHEDULE_KEY, '5x'],
      [RETRY_SCHEDULE_KEY, '15s,,1m'],
      [RETRY_SCHEDULE_KEY, ''],
      [RETRY_SCHEDULE_KEY, '31d'],
      [allowlistKey('generic'), '10.0.0.0/33'],
      [allowlistKey('generic'), '10.0.0.1, not-an-ip'],
      [allowlistKey('stripe'), '::1/129'],
    ] as const) {
      const err = await settings.update(key, value, actor).catch((e: unknown) => e);
      expect(err, `${key}=${value}`).toBeInstanceOf(SettingValidationError);
      expect((err as SettingValidationError).status).toBe(400);
      expect((err as SettingValidationError).key).toBe(key);
    }
    const detail = ((await settings.update(RETRY_SCHEDULE_KEY, '5x', actor).catch((e: unknown) => e)) as SettingValidationError).detail;
    expect(detail).toBe('"5x" is not a duration like 15s, 1m, 2h');
    const unknown = await settings.update('secret.GATEWAY_SECRET', 'x', actor).catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(AppError);
    expect((unknown as AppError).status).toBe(400);
    expect(await storedRows()).toEqual([]);
    expect(await auditRows()).toEqual([]);
    expect(settings.retryScheduleMs()).toEqual([10_000, 60_000, 7_200_000]);
  });

  it('stores a valid value with an audit row in one go, effective at once here, and on another instance after refresh', async () => {
    const a = make();
    const b = make();
    await b.refresh();
    now = new Date('2026-03-01T10:05:00.000Z');
    const first = await a.update(RETRY_SCHEDULE_KEY, ' 5s, 30s ,2m ', { operator: 'Ann', remoteIp: '127.0.0.1' });
    expect(first).toEqual({ changed: true, oldValue: null, newValue: '5s,30s,2m' });
    expect(a.retryScheduleMs()).toEqual([5000, 30_000, 120_000]);
    expect(await storedRows()).toEqual([{ config_key: RETRY_SCHEDULE_KEY, config_value: '5s,30s,2m' }]);
    const [audit] = await auditRows();
    expect(audit).toMatchObject({
      actor: 'Ann',
      action: 'settings.update',
      target: RETRY_SCHEDULE_KEY,
      old_value: null,
      new_value: '5s,30s,2m',
      remote_ip: '127.0.0.1',
      created_at: toDbTime(now),
    });

    // The other instance still has what it read, until it refreshes.
    expect(b.retryScheduleMs()).toEqual([10_000, 60_000, 7_200_000]);
    await b.refresh();
    expect(b.retryScheduleMs()).toEqual([5000, 30_000, 120_000]);
    expect(b.states()[0]).toMatchObject({ source: 'stored', stored: '5s,30s,2m', effectiveText: '5s,30s,2m' });

    now = new Date('2026-03-01T10:06:00.000Z');
    expect(await b.update(RETRY_SCHEDULE_KEY, '1m', { operator: 'Bob' })).toEqual({ changed: true, oldValue: '5s,30s,2m', newValue: '1m' });
    expect(await b.update(RETRY_SCHEDULE_KEY, '1m', { operator: 'Bob' })).toMatchObject({ changed: false });
    const rows = await auditRows();
    expect(rows.map((r) => [r.actor, r.old_value, r.new_value])).toEqual([
      ['Ann', null, '5s,30s,2m'],
      ['Bob', '5s,30s,2m', '1m'],
    ]);
    expect(rows[1]!.remote_ip).toBeNull();
    await a.refresh();
    expect(a.retryScheduleMs()).toEqual([60_000]);

    // Reset: the row goes, the environment's value is back.
    expect(await a.update(RETRY_SCHEDULE_KEY, null, { operator: 'Ann' })).toEqual({ changed: true, oldValue: '1m', newValue: null });
    expect(a.retryScheduleMs()).toEqual([10_000, 60_000, 7_200_000]);
    expect(await storedRows()).toEqual([]);
    expect((await auditRows()).at(-1)).toMatchObject({ old_value: '1m', new_value: null });
  });

  it('an empty allowlist adds no narrowing: the environment list stays in force; reset removes the row', async () => {
    const settings = make();
    expect(await settings.update(allowlistKey('generic'), '  ', { operator: 'Ann' })).toEqual({ changed: true, oldValue: null, newValue: '' });
    expect(settings.callbackAllowlist('generic')?.entries).toEqual(['10.0.0.0/8', '2001:db8::/32']);
    expect(settings.callbackAllowlist('generic')?.allows('192.168.1.1')).toBe(false);
    expect(settings.states().find((s) => s.key === allowlistKey('generic'))).toMatchObject({
      source: 'stored',
      stored: '',
      effectiveText: '10.0.0.0/8, 2001:db8::/32',
      outsideEnv: [],
    });

    await settings.update(allowlistKey('stripe'), '203.0.113.7,  198.51.100.0/24 ', { operator: 'Ann' });
    const stripe = settings.callbackAllowlist('stripe');
    expect(stripe?.entries).toEqual(['203.0.113.7', '198.51.100.0/24']);
    expect(stripe?.allows('198.51.100.9')).toBe(true);
    expect(stripe?.allows('::ffff:203.0.113.7')).toBe(true);
    expect(stripe?.allows('203.0.113.8')).toBe(false);
    expect(settings.callbackAllowlist('alipay')).toBeNull();

    await settings.update(allowlistKey('generic'), null, { operator: 'Ann' });
    expect(settings.callbackAllowlist('generic')?.entries).toEqual(['10.0.0.0/8', '2001:db8::/32']);
    expect((await auditRows()).map((r) => [r.target, r.old_value, r.new_value])).toEqual([
      [allowlistKey('generic'), null, ''],
      [allowlistKey('stripe'), null, '203.0.113.7, 198.51.100.0/24'],
      [allowlistKey('generic'), '', null],
    ]);
  });

  it('ignores a stored value that does not parse, with one warning, and uses the environment value', async () => {
    const at = toDbTime(now);
    await db.kysely
      .insertInto('system_config')
      .values([
        { config_key: RETRY_SCHEDULE_KEY, config_value: 'soon', description: null, created_at: at, updated_at: at },
        { config_key: allowlistKey('generic'), config_value: '300.1.1.1', description: null, created_at: at, updated_at: at },
      ])
      .execute();
    const settings = make();
    await settings.refresh();
    await settings.refresh();
    expect(settings.retryScheduleMs()).toEqual([10_000, 60_000, 7_200_000]);
    expect(settings.callbackAllowlist('generic')?.entries).toEqual(['10.0.0.0/8', '2001:db8::/32']);
    expect(logger.warn).toHaveBeenCalledTimes(2);
    expect(logger.warn.mock.calls.map((c) => (c[0] as { key: string }).key).sort()).toEqual([allowlistKey('generic'), RETRY_SCHEDULE_KEY]);
    expect(settings.states()[0]).toMatchObject({ source: 'environment', stored: 'soon', invalid: expect.stringContaining('"soon"') });
    // Fixed from the console: valid again, and a later bad value warns again.
    await settings.update(RETRY_SCHEDULE_KEY, '20s', { operator: 'Ann' });
    expect(settings.retryScheduleMs()).toEqual([20_000]);
    await db.kysely.updateTable('system_config').set({ config_value: '20 s' }).where('config_key', '=', RETRY_SCHEDULE_KEY).execute();
    await settings.refresh();
    expect(settings.retryScheduleMs()).toEqual([10_000, 60_000, 7_200_000]);
    expect(logger.warn).toHaveBeenCalledTimes(3);
  });

  it('started instances converge within refreshMs; a failed read keeps the last values', async () => {
    const writer = make();
    const reader = make(40);
    await reader.start();
    await writer.update(allowlistKey('sandbox'), '192.0.2.1', { operator: 'Ann' });
    await vi.waitFor(() => expect(reader.callbackAllowlist('sandbox')?.entries).toEqual(['192.0.2.1']), { timeout: 2000, interval: 20 });
    await reader.stop();
    await writer.update(allowlistKey('sandbox'), '192.0.2.2', { operator: 'Ann' });
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(reader.callbackAllowlist('sandbox')?.entries).toEqual(['192.0.2.1']); // stopped: no more reads
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(reader.callbackAllowlist('sandbox')?.entries).toEqual(['192.0.2.1']);

    // Never started: a getter finding its values older than refreshMs re-reads in the background.
    const lazy = make(30);
    await lazy.refresh();
    await writer.update(allowlistKey('sandbox'), '192.0.2.3', { operator: 'Ann' });
    expect(lazy.callbackAllowlist('sandbox')?.entries).toEqual(['192.0.2.2']); // fresh enough: no read
    await new Promise((resolve) => setTimeout(resolve, 40));
    expect(lazy.callbackAllowlist('sandbox')?.entries).toEqual(['192.0.2.2']); // stale: answers now, reads behind
    await vi.waitFor(() => expect(lazy.callbackAllowlist('sandbox')?.entries).toEqual(['192.0.2.3']), { timeout: 2000, interval: 10 });

    // A database that cannot be read: refresh rejects, the values in force stay.
    const broken = createRuntimeSettings({
      db: {
        ...db,
        kysely: {
          selectFrom: () => {
            throw new Error('down');
          },
        },
      } as unknown as Database,
      config,
      clock,
      logger: logger as unknown as Logger,
    });
    await expect(broken.refresh()).rejects.toThrow('down');
    expect(broken.retryScheduleMs()).toEqual([10_000, 60_000, 7_200_000]);
    await broken.start(); // logs, does not throw
    await broken.stop();
    expect(logger.warn).toHaveBeenCalled();
  });

  it('two instances writing the same new key at once: one row, both changes audited in order', async () => {
    const a = make();
    const b = make();
    const results = await Promise.all([a.update(RETRY_SCHEDULE_KEY, '1s', { operator: 'Ann' }), b.update(RETRY_SCHEDULE_KEY, '2s', { operator: 'Bob' })]);
    expect(results.every((r) => r.changed)).toBe(true);
    const rows = await storedRows();
    expect(rows).toHaveLength(1);
    const audit = await auditRows();
    expect(audit).toHaveLength(2);
    expect(audit[0]!.old_value).toBeNull();
    expect(audit[1]!.old_value).toBe(audit[0]!.new_value);
    expect(rows[0]!.config_value).toBe(audit[1]!.new_value);
  });
});
