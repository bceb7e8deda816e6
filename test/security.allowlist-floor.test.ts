import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allowlistKey } from '../src/settings/settings.keys.ts';
import { parseIpAllowlist } from '../src/shared/ip-allowlist.ts';
import { entriesOutside, intersectEntries, narrowAllowlist } from '../src/shared/ip-ranges.ts';
import { toDbTime } from '../src/shared/time.ts';
import { consolePage, signedInAgent } from './helpers/admin.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';
import { createOrder, gatewayParams, unescapeHtml } from './helpers/pages.ts';

/** The environment's callback allowlist is a floor: a console override may narrow it, never widen or clear it. */

const GENERIC = allowlistKey('generic');
const ENV_LIST = '203.0.113.0/24';
const INSIDE = '203.0.113.9';
const INSIDE_NOT_NARROWED = '203.0.113.200';
const OUTSIDE = '198.51.100.7';

/** The text of the element marked `data-field="<name>"` in the generic allowlist's card. */
function cardField(html: string, name: string): string | null {
  const start = html.indexOf(`data-key="${GENERIC}" data-source=`);
  expect(start).toBeGreaterThan(0);
  const card = html.slice(start, html.indexOf('</section>', start));
  const match = new RegExp(`<(\\w+)[^>]*data-field="${name}"[^>]*>([\\s\\S]*?)</\\1>`).exec(card);
  return match ? unescapeHtml(match[2]!.replace(/<[^>]+>/g, '').trim()) : null;
}

describe.each(ENGINES)('console allowlist overrides never widen CALLBACK_IP_ALLOWLIST_<GATEWAY> on %s', (engine) => {
  let ctx: TestContext;
  let agent: request.Agent;

  /** POST /notify for a fresh order as if from `ip` (TRUST_PROXY=loopback: the forwarded client counts). */
  const notifyFrom = async (ip: string) => {
    const orderNo = await createOrder(ctx);
    return request(ctx.app).post('/notify').set('X-Forwarded-For', ip).type('form').send(gatewayParams(orderNo));
  };
  const expectForbidden = (res: request.Response) => {
    expect(res.status, JSON.stringify(res.body)).toBe(403);
    expect(res.body).toMatchObject({ success: false, code: 'forbidden' });
  };
  const save = async (value: string) => {
    const { csrf } = await consolePage(agent, '/admin/settings');
    return agent.post('/admin/settings').type('form').send({ _csrf: csrf, key: GENERIC, value });
  };
  const storedOverride = async () =>
    (await ctx.db.kysely.selectFrom('system_config').select('config_value').where('config_key', '=', GENERIC).executeTakeFirst())?.config_value ?? null;
  const effectiveShown = async () => cardField((await consolePage(agent, '/admin/settings')).html, 'effective');

  beforeAll(async () => {
    ctx = await createTestContext(engine, { env: { CALLBACK_IP_ALLOWLIST_GENERIC: ENV_LIST, TRUST_PROXY: 'loopback' } });
    agent = await signedInAgent(ctx.app, 'Sam');
  });
  afterAll(() => ctx?.close());

  it('an override saved empty keeps the environment list in force', async () => {
    const res = await save('');
    expect(res.status).toBe(303);
    expectForbidden(await notifyFrom(OUTSIDE));
    expect((await notifyFrom(INSIDE)).status).toBe(200);
    expect(await effectiveShown()).toBe(ENV_LIST);
  });

  it('a wider override is refused with a message naming the environment list; nothing is stored and outsiders stay out', async () => {
    await agent
      .post('/admin/settings/reset')
      .type('form')
      .send({ _csrf: (await consolePage(agent, '/admin/settings')).csrf, key: GENERIC });
    for (const wider of ['0.0.0.0/0', `${OUTSIDE}, ${ENV_LIST}`, '203.0.0.0/16']) {
      const res = await save(wider);
      expect(res.status, wider).toBe(400);
      expect(cardField(res.text, 'error'), wider).toMatch(/outside the environment’s allowlist CALLBACK_IP_ALLOWLIST_GENERIC \(203\.0\.113\.0\/24\)/);
      expect(await storedOverride(), wider).toBeNull();
      expectForbidden(await notifyFrom(OUTSIDE));
    }
  });

  it('a wider override already stored (written before this rule, or the environment narrowed since) applies only where both allow', async () => {
    const at = toDbTime(new Date());
    await ctx.db.kysely.deleteFrom('system_config').where('config_key', '=', GENERIC).execute();
    await ctx.db.kysely
      .insertInto('system_config')
      .values({ config_key: GENERIC, config_value: `${OUTSIDE}, 203.0.113.0/25`, description: null, created_at: at, updated_at: at })
      .execute();
    const page = (await consolePage(agent, '/admin/settings')).html; // the page re-reads system_config
    expect(cardField(page, 'effective')).toBe('203.0.113.0/25');
    expect(cardField(page, 'outside-env')).toContain(OUTSIDE);
    expectForbidden(await notifyFrom(OUTSIDE));
    expectForbidden(await notifyFrom(INSIDE_NOT_NARROWED));
    expect((await notifyFrom(INSIDE)).status).toBe(200);
  });

  it('a narrower override applies: an address the environment allows but the override does not is refused', async () => {
    const res = await save('203.0.113.8/29, 2001:db8::1');
    // An IPv6 address outside the (IPv4-only) environment list is as much a widening as any other.
    expect(res.status).toBe(400);
    expect((await save('203.0.113.8/29')).status).toBe(303);
    expect(await storedOverride()).toBe('203.0.113.8/29');
    expectForbidden(await notifyFrom(INSIDE_NOT_NARROWED));
    expectForbidden(await notifyFrom(OUTSIDE));
    expect((await notifyFrom(INSIDE)).status).toBe(200);
    expect(await effectiveShown()).toBe('203.0.113.8/29');
  });
});

describe.each(ENGINES)('console allowlist overrides without an environment list on %s', (engine) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(engine, { env: { TRUST_PROXY: 'loopback' } });
  });
  afterAll(() => ctx?.close());

  it('any list may be saved and is in force (there is no floor to keep)', async () => {
    const agent = await signedInAgent(ctx.app, 'Sam');
    const { csrf } = await consolePage(agent, '/admin/settings');
    expect((await agent.post('/admin/settings').type('form').send({ _csrf: csrf, key: GENERIC, value: '198.51.100.0/24' })).status).toBe(303);
    const orderNo = await createOrder(ctx);
    const res = await request(ctx.app).post('/notify').set('X-Forwarded-For', INSIDE).type('form').send(gatewayParams(orderNo));
    expect(res.status).toBe(403);
    const allowed = await request(ctx.app).post('/notify').set('X-Forwarded-For', OUTSIDE).type('form').send(gatewayParams(orderNo));
    expect(allowed.status).toBe(200);
  });
});

describe('allowlist range arithmetic', () => {
  it('a list covered by several narrower environment ranges is inside it; IPv4 and IPv4-mapped IPv6 are the same addresses', () => {
    expect(entriesOutside(['10.0.0.0/25', '10.0.0.128/25'], ['10.0.0.0/24', '10.0.1.0/24', '::ffff:a00:5', '::ffff:10.0.0.7'])).toEqual(['10.0.1.0/24']);
    expect(entriesOutside(['::/0'], ['1.2.3.4', '2001:db8::/32'])).toEqual([]);
    expect(entriesOutside(['0.0.0.0/0'], ['2001:db8::1', '::ffff:a00:1'])).toEqual(['2001:db8::1']);
  });

  it('the intersection is the narrower range of each overlapping pair, and allows exactly what both lists allow', () => {
    expect(intersectEntries(['203.0.113.0/24'], ['198.51.100.7', '203.0.113.0/25'])).toEqual(['203.0.113.0/25']);
    expect(intersectEntries(['10.0.0.0/25', '10.0.0.128/25'], ['10.0.0.0/24'])).toEqual(['10.0.0.0/25', '10.0.0.128/25']);
    expect(intersectEntries(['2001:db8::/32'], ['2001:db8:0:0::1', '2001:db9::/32'])).toEqual(['2001:db8:0:0::1']);
    const narrowed = narrowAllowlist(parseIpAllowlist('203.0.113.0/24, 2001:db8::/32'), parseIpAllowlist('0.0.0.0/0'));
    expect(narrowed?.entries).toEqual(['203.0.113.0/24']);
    expect([narrowed?.allows('203.0.113.1'), narrowed?.allows('198.51.100.1'), narrowed?.allows('2001:db8::1')]).toEqual([true, false, false]);
    expect(narrowAllowlist(parseIpAllowlist('10.0.0.0/8'), parseIpAllowlist('192.168.0.0/16'))?.entries).toEqual([]);
    expect(narrowAllowlist(null, null)).toBeNull();
  });
});
