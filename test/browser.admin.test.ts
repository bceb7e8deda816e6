import { mkdirSync } from 'node:fs';
import request from 'supertest';
import type { Browser, BrowserContextOptions, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, ensureOperator } from './helpers/admin.ts';
import { CHROMIUM, HAVE_CHROMIUM, serveWithBrowser } from './helpers/browser.ts';
import { createDeliveryContext, type DeliveryContext } from './helpers/delivery-context.ts';
import { ENGINES } from './helpers/engines.ts';
import { createOrder, gatewayParams, uid } from './helpers/pages.ts';
import { startReceiver, type Receiver } from './helpers/receiver.ts';

/** Issue 6 item 9: the operator console in a real Chromium, desktop and 390 px wide. Screenshots go to test-results/. */

const CI = process.env.CI === 'true';
const SHOTS = 'test-results';

if (!HAVE_CHROMIUM && !CI) {
  console.warn(`\n${'!'.repeat(78)}\n!! ${CHROMIUM} not found: the console browser tests were NOT run (apt-get install chromium).\n${'!'.repeat(78)}\n`);
}

const DESKTOP: BrowserContextOptions = { viewport: { width: 1280, height: 800 } };
const MOBILE: BrowserContextOptions = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

/**
 * Everything that would mean a broken page: console errors and warnings (CSP violations among them), page
 * errors, failed loads, HTTP errors. `expected` lists the error statuses a step provokes on purpose.
 */
function watch(page: Page) {
  const problems: string[] = [];
  const expected: Array<{ status: number; path: string }> = [];
  const isExpected = (text: string) => expected.some((e) => text.includes(`${e.status}`) && text.includes(e.path));
  page.on('console', (msg) => {
    const text = `console ${msg.type()}: ${msg.text()} ${msg.location().url}`.trim();
    if ((msg.type() === 'error' || msg.type() === 'warning') && !isExpected(text)) problems.push(text);
  });
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('requestfailed', (req) => {
    // Leaving a page cancels what it still loads (Chromium fetches the favicon after `load`): not a broken page.
    if (req.failure()?.errorText === 'net::ERR_ABORTED' && !req.isNavigationRequest()) return;
    problems.push(`request failed: ${req.url()} ${req.failure()?.errorText ?? ''}`);
  });
  page.on('response', (res) => {
    const text = `HTTP ${res.status()}: ${res.url()}`;
    if (res.status() >= 400 && !isExpected(text)) problems.push(text);
  });
  // Confirmation dialogs (close, resend) are answered "OK", as an operator would.
  page.on('dialog', (dialog) => void dialog.accept());
  return { problems, expect: (status: number, path: string) => expected.push({ status, path }) };
}

const overflowsX = (page: Page) => page.evaluate<boolean>('document.documentElement.scrollWidth > window.innerWidth');

describe.skipIf(!HAVE_CHROMIUM && !CI).each(ENGINES)('operator console in Chromium on %s', (engine) => {
  let ctx: DeliveryContext;
  let receiver: Receiver;
  let served: Awaited<ReturnType<typeof serveWithBrowser>> | undefined;
  let base: string;
  let browser: Browser;
  const paid: string[] = [];
  let ghost: string;
  const shot = async (page: Page, name: string) => {
    if (engine === 'sqlite') await page.screenshot({ path: `${SHOTS}/admin-${name}.png`, fullPage: true });
  };

  beforeAll(async () => {
    if (!HAVE_CHROMIUM) throw new Error(`CI=true but ${CHROMIUM} is missing: the browser tests must run in CI (.ci/run installs chromium).`);
    mkdirSync(SHOTS, { recursive: true });
    ctx = await createDeliveryContext(engine);
    await ensureOperator(ctx.app, 'Dana', 'operator');
    receiver = await startReceiver();
    for (let i = 0; i < 3; i++) paid.push(await ctx.paidOrder(receiver.url, `${(i + 1) * 25}.00`));
    await createOrder(ctx, { subject: 'Pending demo order' });
    const failed = await createOrder(ctx);
    await request(ctx.app)
      .post('/notify')
      .type('form')
      .send(gatewayParams(failed, { status: 'failed' }));
    ghost = uid('GHOST');
    expect((await request(ctx.app).post('/notify').type('form').send(gatewayParams(ghost))).status).toBe(404);
    expect(
      (
        await request(ctx.app)
          .post('/notify')
          .type('form')
          .send({ ...gatewayParams(failed), sign: 'BAD' })
      ).status,
    ).toBe(401);
    for (const orderNo of paid) await ctx.waitForStatus(orderNo, 'delivered');
    served = await serveWithBrowser(ctx.app);
    ({ base, browser } = served);
  });

  afterAll(async () => {
    await served?.close();
    await receiver?.close();
    await ctx?.close();
  });

  async function logIn(page: Page, watcher: ReturnType<typeof watch>, target: string) {
    await page.goto(`${base}${target}`);
    await page.waitForURL(/\/admin\/login/);
    watcher.expect(401, '/admin/login');
    await page.fill('#username', 'Dana');
    await page.fill('#password', 'not-the-password');
    await Promise.all([page.waitForLoadState('load'), page.click('#login-button')]);
    await page.locator('#login-error').waitFor();
    expect(await page.locator('#login-error').innerText()).toBe('The username or password is not correct.');
    await page.fill('#password', ADMIN_PASSWORD);
    await Promise.all([page.waitForURL((url) => url.pathname === new URL(target, base).pathname), page.click('#login-button')]);
  }

  it('desktop: login, dashboard, filters, timeline, resend, inbox, CSRF, logout by cookie loss', async () => {
    const context = await browser.newContext({ ...DESKTOP, locale: 'en-US' });
    const page = await context.newPage();
    const watcher = watch(page);

    // Login fails with a wrong password, then succeeds and returns to the page asked for.
    await page.goto(`${base}/admin/login`);
    await shot(page, 'login');
    await logIn(page, watcher, '/admin');
    expect(await page.locator('h1').innerText()).toBe('Dashboard');

    // Charts are real SVG with bars drawn.
    for (const id of ['chart-orders', 'chart-deliveries', 'chart-callbacks']) {
      const box = await page.locator(`svg#${id}`).boundingBox();
      expect(box!.width, id).toBeGreaterThan(300);
      expect(box!.height, id).toBeGreaterThan(100);
    }
    const paidBar = await page.locator('#chart-orders g[data-key=paid] rect.fill-status-paid').boundingBox();
    expect(paidBar!.width).toBeGreaterThan(50);
    expect(await page.locator('#chart-callbacks rect[data-verdict=applied]').count()).toBeGreaterThan(0);
    // Strings, not functions: the project compiles without DOM typings.
    const fill = await page.evaluate<string>('getComputedStyle(document.querySelector("#chart-callbacks rect[data-verdict=applied]")).fill');
    expect(fill).toBe('rgb(25, 135, 84)');
    expect(await page.locator('#kpi-orders').innerText()).toBe('5');
    expect(await page.locator('#nav-badge-inbox').innerText()).toBe('1');
    await shot(page, 'dashboard');

    // Filter the list.
    await page.click('#nav-orders');
    await page.waitForURL(/\/admin\/orders$/);
    expect(await page.locator('#orders-table tbody tr').count()).toBe(5);
    await page.selectOption('#filter-status', 'paid');
    await Promise.all([page.waitForURL(/status=paid/), page.click('#filter-button')]);
    const attrs = (selector: string, attr: string) =>
      page.evaluate<string[]>(`[...document.querySelectorAll('${selector}')].map((e) => e.getAttribute('${attr}'))`);
    const rows = await attrs('#orders-table tbody tr', 'data-order-no');
    expect(rows.sort()).toEqual([...paid].sort());
    expect(await attrs('#orders-table [data-status]', 'data-status')).toEqual(['paid', 'paid', 'paid']);
    await page.fill('#filter-q', paid[0]!);
    await Promise.all([page.waitForURL(/q=/), page.click('#filter-button')]);
    expect(await page.locator('#orders-table tbody tr').count()).toBe(1);
    await page.click('#filter-reset');
    await page.selectOption('#filter-status', 'paid');
    await Promise.all([page.waitForURL(/status=paid/), page.click('#filter-button')]);
    await shot(page, 'orders');

    // Open a detail timeline.
    const orderNo = paid[0]!;
    await Promise.all([page.waitForURL(new RegExp(`/admin/orders/${orderNo}$`)), page.click(`a.order-link[href$="${orderNo}"]`)]);
    expect(await page.locator('#order-no').innerText()).toBe(orderNo);
    expect(await attrs('#timeline > li', 'data-kind')).toEqual(['created', 'payment', 'event']);
    await page.click('#timeline details.payload summary >> nth=0');
    expect(await page.locator('#timeline details.payload pre').first().innerText()).toContain(`order_no = ${orderNo}`);
    expect(await page.locator('tr.attempt').count()).toBe(1);

    // Resend creates a new attempt.
    const before = receiver.received.length;
    await Promise.all([page.waitForURL(/flash=resent/), page.click('#resend-button')]);
    expect(await page.locator('#flash').innerText()).toContain('A fresh delivery of the latest notification was queued.');
    await receiver.waitFor(before + 1);
    await ctx.waitForStatus(orderNo, 'delivered');
    await page.reload();
    expect(await page.locator('tr.attempt').count()).toBe(2);
    expect(await page.locator('[data-kind=audit]').innerText()).toContain('Notification resent by Dana');
    await shot(page, 'order-detail');

    // The inbox lists the unknown-order callback; review it with a note.
    await Promise.all([page.waitForURL(/\/admin\/inbox$/), page.click('#nav-inbox')]);
    const entry = page.locator('article.inbox-unknown_order');
    expect(await entry.count()).toBe(1);
    expect(await entry.locator('[data-field=order_no]').innerText()).toContain(ghost);
    await shot(page, 'inbox');
    await entry.locator('textarea').fill('Probe from the gateway’s test system; nothing to do.');
    await Promise.all([page.waitForURL(/flash=reviewed/), entry.locator('button[type=submit]').click()]);
    expect(await page.locator('#inbox-empty').isVisible()).toBe(true);
    expect(await page.locator('#nav-badge-inbox').count()).toBe(0);
    await Promise.all([page.waitForURL(/filter=reviewed/), page.click('[data-filter=reviewed]')]);
    expect(await page.locator('.note-text').innerText()).toBe('Probe from the gateway’s test system; nothing to do.');
    await shot(page, 'inbox-reviewed');

    // A POST without the CSRF token is refused (the form's token removed, as a forged form would lack it).
    const pendingNo = (await ctx.db.kysely.selectFrom('orders').select('order_no').where('status', '=', 'pending').executeTakeFirstOrThrow()).order_no;
    await page.goto(`${base}/admin/orders/${pendingNo}`);
    watcher.expect(403, `/admin/orders/${pendingNo}/close`);
    await page.evaluate('document.querySelector("#close-button").form.querySelector("input[name=_csrf]").remove()');
    const [refused] = await Promise.all([page.waitForResponse((r) => r.url().endsWith('/close')), page.click('#close-button')]);
    expect(refused.status()).toBe(403);
    await page.waitForLoadState('load');
    expect(await page.locator('h1').innerText()).toBe('Error 403');
    expect((await ctx.db.kysely.selectFrom('orders').select('status').where('order_no', '=', pendingNo).executeTakeFirstOrThrow()).status).toBe('pending');

    // Without the session cookie the console asks for a login again.
    await context.clearCookies({ name: 'pcs_admin' });
    await page.goto(`${base}/admin/inbox`);
    await page.waitForURL(/\/admin\/login\?next=%2Fadmin%2Finbox$/);
    expect(await page.locator('#login-form').isVisible()).toBe(true);

    expect(watcher.problems).toEqual([]);
    await context.close();
  });

  it('mobile (390 px) and Chinese: every console page fits the screen and the menu opens', async () => {
    const context = await browser.newContext({ ...MOBILE, locale: 'zh-CN' });
    const page = await context.newPage();
    const watcher = watch(page);
    await page.goto(`${base}/admin/login`);
    expect(await page.locator('h1').innerText()).toBe('登录');
    expect(await overflowsX(page)).toBe(false);
    await shot(page, 'login-mobile');
    await page.fill('#username', 'admin');
    await page.fill('#password', ADMIN_PASSWORD);
    await Promise.all([page.waitForURL(/\/admin$/), page.click('#login-button')]);
    expect(await page.locator('h1').innerText()).toBe('概览');
    expect(await page.locator('#nav-orders').isVisible()).toBe(false);
    await page.click('.navbar-toggler');
    await page.locator('#console-nav.collapse.show').waitFor();
    expect(await page.locator('#nav-orders').isVisible()).toBe(true);
    await shot(page, 'menu-mobile');
    await page.click('.navbar-toggler');
    const pages = ['/admin', '/admin/orders?status=paid', `/admin/orders/${paid[1]}`, '/admin/inbox?filter=all'];
    for (const path of pages) {
      await page.goto(`${base}${path}`);
      expect(await overflowsX(page), path).toBe(false);
      const name = path === '/admin' ? 'dashboard' : path.startsWith('/admin/orders/') ? 'order-detail' : path.startsWith('/admin/orders') ? 'orders' : 'inbox';
      await shot(page, `${name}-mobile-zh`);
    }
    expect(await page.locator('html').getAttribute('lang')).toBe('zh-CN');
    expect(watcher.problems).toEqual([]);
    await context.close();
  });
});
