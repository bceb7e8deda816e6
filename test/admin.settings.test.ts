import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/app.ts';
import { createRuntimeSettings, type RuntimeSettings } from '../src/settings/runtime-settings.ts';
import { RETRY_SCHEDULE_KEY, RUNTIME_KEYS, allowlistKey } from '../src/settings/settings.keys.ts';
import { createLogger } from '../src/shared/logger.ts';
import { toDbTime } from '../src/shared/time.ts';
import { consolePage, csrfOf, signedInAgent } from './helpers/admin.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';
import { unescapeHtml } from './helpers/pages.ts';

/** Issue 6 item 5: the settings page — system_config shown (secrets masked), runtime settings edited, audit-logged. */

/** The card of one runtime setting. */
const card = (html: string, key: string) => {
  const start = html.indexOf(`data-key="${key}" data-source=`);
  expect(start, key).toBeGreaterThan(0);
  return html.slice(start, html.indexOf('</section>', start));
};
/** The text of the element marked `data-field="<name>"` (tags stripped, entities decoded). */
const field = (html: string, name: string) =>
  unescapeHtml(
    new RegExp(`<(\\w+)[^>]*data-field="${name}"[^>]*>([\\s\\S]*?)</\\1>`)
      .exec(html)?.[2]
      ?.replace(/<[^>]+>/g, '')
      .trim() ?? '',
  );

describe.each(ENGINES)('console settings on %s', (engine) => {
  let ctx: TestContext;
  let settings: RuntimeSettings;
  let agent: request.Agent;
  let now = new Date('2026-04-01T08:00:00.000Z');
  const secretNote = 'do-not-show-this-value-7f3a9c';
  const generic = allowlistKey('generic');
  const audits = () => ctx.db.kysely.selectFrom('audit_log').selectAll().where('action', '=', 'settings.update').orderBy('id').execute();
  const stored = () =>
    ctx.db.kysely
      .selectFrom('system_config')
      .select(['config_key', 'config_value'])
      .where('config_key', 'in', [...RUNTIME_KEYS])
      .orderBy('config_key')
      .execute();

  beforeAll(async () => {
    const clock = () => now;
    // GATEWAY_SECRET left unset: development generates it and keeps it in system_config as secret.GATEWAY_SECRET.
    ctx = await createTestContext(engine, {
      env: { GATEWAY_SECRET: undefined, NOTIFY_RETRY_SCHEDULE: '15s,1m,4m', CALLBACK_IP_ALLOWLIST_GENERIC: '10.0.0.0/8' },
      clock,
    });
    // The test holds the app's settings object (as main does): rebuild the app over the same database with it.
    settings = createRuntimeSettings({ db: ctx.db, config: ctx.config, clock, logger: createLogger('silent') });
    ctx.app = createApp({ config: ctx.config, db: ctx.db, logger: createLogger('silent'), clock, settings });
    const at = toDbTime(now);
    await ctx.db.kysely
      .insertInto('system_config')
      .values([
        { config_key: 'secret.EXTRA_TOKEN', config_value: secretNote, description: 'a secret', created_at: at, updated_at: at },
        { config_key: 'ops.note', config_value: 'Ring <b>Ops</b> first', description: 'free text', created_at: at, updated_at: at },
      ])
      .execute();
    agent = await signedInAgent(ctx.app, 'Sam');
  });
  afterAll(() => ctx?.close());

  it('needs a signed-in operator', async () => {
    const res = await request(ctx.app).get('/admin/settings');
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe(`/admin/login?next=${encodeURIComponent('/admin/settings')}`);
  });

  it('shows every system_config row with secrets masked, and the runtime settings with their environment defaults', async () => {
    const { html } = await consolePage(agent, '/admin/settings');
    expect(html).toMatch(/<a class="nav-link active" aria-current="page" href="\/admin\/settings" id="nav-settings">/);
    // Every row is listed; secret values never reach the page.
    const rows = await ctx.db.kysely.selectFrom('system_config').select(['config_key', 'config_value']).execute();
    expect(rows.map((r) => r.config_key)).toContain('secret.GATEWAY_SECRET');
    for (const row of rows) expect(html).toContain(`<tr data-key="${row.config_key}" data-masked="${row.config_key.startsWith('secret.') ? 'yes' : 'no'}">`);
    expect(html).not.toContain(ctx.config.secrets.GATEWAY_SECRET);
    expect(html).not.toContain(secretNote);
    expect(html).toContain('hidden (secret)');
    expect(html).toContain('Ring &lt;b&gt;Ops&lt;/b&gt; first');

    const schedule = card(html, RETRY_SCHEDULE_KEY);
    expect(schedule).toContain('data-source="environment"');
    expect(field(schedule, 'effective')).toBe('15s,1m,4m');
    expect(field(schedule, 'default')).toBe('15s,1m,4m NOTIFY_RETRY_SCHEDULE');
    expect(schedule).toContain('name="_csrf"');
    expect(schedule).not.toContain('id="reset-'); // nothing stored, nothing to reset
    expect(field(card(html, generic), 'effective')).toBe('10.0.0.0/8');
    expect(field(card(html, allowlistKey('stripe')), 'effective')).toBe('any address (no allowlist)');
    expect(field(card(html, allowlistKey('stripe')), 'default')).toBe('not set (any address) CALLBACK_IP_ALLOWLIST_STRIPE');
    expect(html).toContain('id="settings-history-empty"');
  });

  it('refuses a POST without the CSRF token (403), signed in or not; nothing changes', async () => {
    for (const path of ['/admin/settings', '/admin/settings/reset']) {
      expect((await agent.post(path).type('form').send({ key: RETRY_SCHEDULE_KEY, value: '1s' })).status, path).toBe(403);
      expect(
        (
          await agent
            .post(path)
            .type('form')
            .send({ _csrf: 'A'.repeat(43), key: RETRY_SCHEDULE_KEY, value: '1s' })
        ).status,
        path,
      ).toBe(403);
      expect((await request(ctx.app).post(path).type('form').send({ key: RETRY_SCHEDULE_KEY, value: '1s' })).status, path).toBe(403);
    }
    // With a valid token but no session: the login, not a change.
    const anon = request.agent(ctx.app);
    const login = await anon.get('/admin/login');
    const res = await anon
      .post('/admin/settings')
      .type('form')
      .send({ _csrf: csrfOf(login.text), key: RETRY_SCHEDULE_KEY, value: '1s' });
    expect(res.status).toBe(303);
    expect(res.headers.location).toMatch(/^\/admin\/login/);
    expect(await stored()).toEqual([]);
    expect(await audits()).toEqual([]);
  });

  it('shows validation errors on the page (400) with what was typed; nothing stored or audited', async () => {
    const { csrf } = await consolePage(agent, '/admin/settings');
    const bad = await agent.post('/admin/settings').type('form').send({ _csrf: csrf, key: RETRY_SCHEDULE_KEY, value: '5x' });
    expect(bad.status).toBe(400);
    const schedule = card(bad.text, RETRY_SCHEDULE_KEY);
    expect(field(schedule, 'error')).toBe('Not saved: the retry schedule is not valid: "5x" is not a duration like 15s, 1m, 2h');
    expect(schedule).toContain('value="5x"');
    expect(schedule).toContain('is-invalid');

    const cidr = await agent.post('/admin/settings').type('form').send({ _csrf: csrf, key: generic, value: '10.0.0.0/33' });
    expect(cidr.status).toBe(400);
    expect(field(card(cidr.text, generic), 'error')).toBe('Not saved: the allowlist is not valid: "10.0.0.0/33" has an invalid prefix length');
    expect(card(cidr.text, RETRY_SCHEDULE_KEY)).not.toContain('data-field="error"');

    const zh = await agent.post('/admin/settings?lang=zh-CN').type('form').send({ _csrf: csrf, key: generic, value: 'nope' });
    expect(zh.status).toBe(400);
    expect(zh.text).toContain('未保存：白名单无效：');
    await agent.get('/admin/settings?lang=en');

    const unknown = await agent.post('/admin/settings').type('form').send({ _csrf: csrf, key: 'secret.GATEWAY_SECRET', value: 'mine' });
    expect(unknown.status).toBe(400);
    expect((await agent.post('/admin/settings').type('form').send({ _csrf: csrf, key: RETRY_SCHEDULE_KEY })).status).toBe(400);
    expect(await stored()).toEqual([]);
    expect(await audits()).toEqual([]);
  });

  it('saves a valid value: stored, audit-logged (who, when, old, new), in force at once, shown with a flash and in the history', async () => {
    const { csrf } = await consolePage(agent, '/admin/settings');
    now = new Date('2026-04-01T08:30:00.000Z');
    const res = await agent.post('/admin/settings').type('form').send({ _csrf: csrf, key: RETRY_SCHEDULE_KEY, value: '5s, 20s' });
    expect(res.status).toBe(303);
    expect(res.headers.location).toBe('/admin/settings?flash=settings_saved#setting-notify-retry_schedule');
    expect(settings.retryScheduleMs()).toEqual([5000, 20_000]);
    expect(await stored()).toEqual([{ config_key: RETRY_SCHEDULE_KEY, config_value: '5s,20s' }]);
    const [audit] = await audits();
    expect(audit).toMatchObject({ actor: 'Sam', target: RETRY_SCHEDULE_KEY, old_value: null, new_value: '5s,20s', created_at: '2026-04-01 08:30:00.000' });
    expect(audit!.remote_ip).toMatch(/127\.0\.0\.1/);

    now = new Date('2026-04-01T08:31:00.000Z');
    await agent.post('/admin/settings').type('form').send({ _csrf: csrf, key: RETRY_SCHEDULE_KEY, value: '30s' });
    const same = await agent.post('/admin/settings').type('form').send({ _csrf: csrf, key: RETRY_SCHEDULE_KEY, value: '30s' });
    expect(same.headers.location).toBe('/admin/settings?flash=settings_unchanged#setting-notify-retry_schedule');
    expect((await audits()).map((a) => [a.old_value, a.new_value])).toEqual([
      [null, '5s,20s'],
      ['5s,20s', '30s'],
    ]);

    const { html } = await consolePage(agent, '/admin/settings?flash=settings_saved');
    expect(html).toContain('data-flash="settings_saved"');
    const schedule = card(html, RETRY_SCHEDULE_KEY);
    expect(schedule).toContain('data-source="stored"');
    expect(field(schedule, 'source')).toBe('Stored override');
    expect(field(schedule, 'effective')).toBe('30s');
    expect(field(schedule, 'default')).toBe('15s,1m,4m NOTIFY_RETRY_SCHEDULE');
    expect(schedule).toContain('value="30s"');
    expect(schedule).toContain('id="reset-setting-notify-retry_schedule"');
    const history = [
      ...html.matchAll(
        /<tr class="settings-change" data-target="([^"]+)">[\s\S]*?<td class="text-nowrap small">([^<]+)<\/td>[\s\S]*?data-field="actor">([^<]+)<[\s\S]*?data-field="old">([^<]+)<[\s\S]*?data-field="new">([^<]+)</g,
      ),
    ].map((m) => m.slice(1));
    expect(history).toEqual([
      [RETRY_SCHEDULE_KEY, '2026-04-01 08:31:00', 'Sam', '5s,20s', '30s'],
      [RETRY_SCHEDULE_KEY, '2026-04-01 08:30:00', 'Sam', 'none (environment default)', '5s,20s'],
    ]);
    expect(html).toContain('<tr data-key="notify.retry_schedule" data-masked="no">');
  });

  it('an allowlist saved empty keeps the environment list; a narrower one applies; reset goes back to the environment default', async () => {
    const { csrf } = await consolePage(agent, '/admin/settings');
    const empty = await agent.post('/admin/settings').type('form').send({ _csrf: csrf, key: generic, value: '' });
    expect(empty.headers.location).toBe('/admin/settings?flash=settings_saved#setting-callback-ip_allowlist-generic');
    expect(settings.callbackAllowlist('generic')?.entries).toEqual(['10.0.0.0/8']);
    let page = await consolePage(agent, '/admin/settings');
    expect(field(card(page.html, generic), 'effective')).toBe('10.0.0.0/8');
    expect(card(page.html, generic)).toContain('data-source="stored"');
    expect(card(page.html, generic)).not.toContain('data-field="outside-env"');

    await agent.post('/admin/settings').type('form').send({ _csrf: csrf, key: generic, value: '10.20.0.0/16, 10.30.0.1' });
    expect(settings.callbackAllowlist('generic')?.allows('10.20.3.4')).toBe(true);
    expect(settings.callbackAllowlist('generic')?.allows('10.1.1.1')).toBe(false);

    const reset = await agent.post('/admin/settings/reset').type('form').send({ _csrf: csrf, key: generic });
    expect(reset.headers.location).toBe('/admin/settings?flash=settings_reset#setting-callback-ip_allowlist-generic');
    expect(settings.callbackAllowlist('generic')?.entries).toEqual(['10.0.0.0/8']);
    const again = await agent.post('/admin/settings/reset').type('form').send({ _csrf: csrf, key: generic });
    expect(again.headers.location).toBe('/admin/settings?flash=settings_unchanged#setting-callback-ip_allowlist-generic');
    expect((await audits()).filter((a) => a.target === generic).map((a) => [a.old_value, a.new_value])).toEqual([
      [null, ''],
      ['', '10.20.0.0/16, 10.30.0.1'],
      ['10.20.0.0/16, 10.30.0.1', null],
    ]);
    page = await consolePage(agent, '/admin/settings?flash=settings_reset');
    expect(page.html).toContain('The stored override was removed');
    expect(card(page.html, generic)).toContain('data-source="environment"');
    expect(page.html).toMatch(/data-target="callback.ip_allowlist.generic">[\s\S]*?data-field="new">none \(environment default\)</);
  });

  it('another instance (its own settings object on the same database) follows after a refresh', async () => {
    const other = createRuntimeSettings({ db: ctx.db, config: ctx.config, clock: () => now, logger: createLogger('silent') });
    await other.refresh();
    expect(other.retryScheduleMs()).toEqual([30_000]);
    const { csrf } = await consolePage(agent, '/admin/settings');
    await agent
      .post('/admin/settings')
      .type('form')
      .send({ _csrf: csrf, key: allowlistKey('alipay'), value: '198.51.100.7' });
    expect(other.callbackAllowlist('alipay')).toBeNull();
    await other.refresh();
    expect(other.callbackAllowlist('alipay')?.entries).toEqual(['198.51.100.7']);
  });

  it('speaks Chinese', async () => {
    const zh = (await agent.get('/admin/settings?lang=zh-CN')).text;
    for (const text of [
      '设置',
      '运行时设置',
      '通知重试计划',
      '回调 IP 白名单：generic',
      '已存储的覆盖值',
      '环境变量默认值',
      '修改历史',
      '已隐藏（密钥）',
      '恢复为环境变量默认值',
      '保存',
    ])
      expect(zh).toContain(text);
    expect(zh).not.toMatch(/undefined|admin_/);
    expect(zh).not.toContain(secretNote);
    await agent.get('/admin/settings?lang=en');
  });

  it('the settings entry is in every console page navigation', async () => {
    const { html } = await consolePage(agent, '/admin');
    expect(html).toContain('href="/admin/settings" id="nav-settings"');
  });
});
