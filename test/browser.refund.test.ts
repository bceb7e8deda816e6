import { mkdirSync } from 'node:fs';
import request from 'supertest';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, ensureOperator } from './helpers/admin.ts';
import { CHROMIUM, HAVE_CHROMIUM, serveWithBrowser } from './helpers/browser.ts';
import { createTestContext, TEST_GATEWAY_SECRET, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';
import { gatewaySign, nowSeconds, signed } from './helpers/gateway-signer.ts';
import { createOrder, gatewayParams, uid } from './helpers/pages.ts';
import { startReceiver, type Receiver } from './helpers/receiver.ts';

/**
 * An operator refunds half of a paid order from the console in a real Chromium: the form with its confirmation, the
 * refund pending after the gateway (a local stand-in checking signatures) accepts it, then succeeded once the
 * gateway's signed notification arrives; the page once in Chinese. Screenshots go to test-results/.
 */

const CI = process.env.CI === 'true';
const SHOTS = 'test-results';

/** Console errors and warnings (CSP violations among them), page errors, failed loads and HTTP errors. */
function watch(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`console ${msg.type()}: ${msg.text()} ${msg.location().url}`.trim());
  });
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('requestfailed', (req) => {
    // Leaving a page cancels what it still loads (the favicon after `load`): not a broken page.
    if (req.failure()?.errorText === 'net::ERR_ABORTED' && !req.isNavigationRequest()) return;
    problems.push(`request failed: ${req.url()} ${req.failure()?.errorText ?? ''}`);
  });
  page.on('response', (res) => {
    if (res.status() >= 400) problems.push(`HTTP ${res.status()}: ${res.url()}`);
  });
  return problems;
}

describe.skipIf(!HAVE_CHROMIUM && !CI).each(ENGINES)('refund from the console, in Chromium on %s', (engine) => {
  let ctx: TestContext;
  let gateway: Receiver;
  let served: Awaited<ReturnType<typeof serveWithBrowser>> | undefined;
  let base: string;
  let browser: Browser;

  beforeAll(async () => {
    if (!HAVE_CHROMIUM) throw new Error(`CI=true but ${CHROMIUM} is missing: the browser tests must run in CI (.ci/run installs chromium).`);
    mkdirSync(SHOTS, { recursive: true });
    // The gateway's refund endpoint: accepts (200) every refund request whose signature checks out with the test's signer.
    gateway = await startReceiver((_n, res, entry) => {
      const form = Object.fromEntries(new URLSearchParams(entry.body)) as Record<string, string>;
      const ok = form.sign === gatewaySign(form, TEST_GATEWAY_SECRET, (form.sign_type ?? 'MD5') as 'MD5' | 'HMAC-SHA256');
      res.writeHead(ok ? 200 : 401).end(ok ? 'ok' : 'bad sign');
    });
    ctx = await createTestContext(engine, { env: { GENERIC_REFUND_URL: gateway.url } });
    await ensureOperator(ctx.app, 'Dana', 'operator');
    served = await serveWithBrowser(ctx.app);
    ({ base, browser } = served);
  });

  afterAll(async () => {
    await served?.close();
    await ctx?.close();
    await gateway?.close();
  });

  const refundRows = (orderNo: string) => ctx.db.kysely.selectFrom('refunds').selectAll().where('order_no', '=', orderNo).execute();
  const text = (page: Page, selector: string) => page.locator(selector).innerText();

  it('log in, refund half with the confirmation ticked, see it pending, then succeeded after the gateway’s notification; zh-CN once', async () => {
    const orderNo = await createOrder(ctx, { order_no: uid('BR'), amount: '20.00', subject: 'Refund demo' });
    const paid = await request(ctx.app)
      .post('/notify')
      .type('form')
      .send(gatewayParams(orderNo, { amount: '20.00' }));
    expect(paid.status, paid.text).toBe(200);

    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
    const page = await context.newPage();
    const problems = watch(page);
    await page.goto(`${base}/admin/orders/${orderNo}`);
    await page.waitForURL(/\/admin\/login/);
    await page.fill('#username', 'Dana');
    await page.fill('#password', ADMIN_PASSWORD);
    await Promise.all([page.waitForURL(new RegExp(`/admin/orders/${orderNo}$`)), page.click('#login-button')]);

    // The form offers the whole amount; half is typed in.
    expect(await page.locator('#refund-amount').inputValue()).toBe('20.00');
    expect(await text(page, '#refund-rest')).toBe('20.00 CNY');
    expect(await text(page, '#order-refunded')).toBe('0.00 CNY');
    await page.fill('#refund-amount', '10.00');
    await page.fill('#refund-reason', 'Half the order came back <damaged>');

    // Unconfirmed, the browser does not send the form.
    await page.click('#refund-button');
    // Strings, not functions: the project compiles without DOM typings.
    expect(await page.evaluate<boolean>('document.querySelector("#refund-confirm").matches(":invalid")')).toBe(true);
    expect(new URL(page.url()).search).toBe('');
    expect(await refundRows(orderNo)).toEqual([]);
    if (engine === 'sqlite') await page.screenshot({ path: `${SHOTS}/refund-form.png`, fullPage: true });

    await page.check('#refund-confirm');
    await Promise.all([page.waitForURL(/flash=refund_created#refunds$/), page.click('#refund-button')]);
    expect(await text(page, '#flash')).toContain('The refund was sent to the gateway, which accepted it: it stays pending until the gateway confirms it.');
    const row = page.locator('#refunds-table tbody tr');
    expect(await row.count()).toBe(1);
    expect(await row.getAttribute('data-status')).toBe('pending');
    expect(await row.locator('.refund-badge').innerText()).toBe('Pending');
    expect(await row.locator('[data-field=reason]').innerText()).toBe('Half the order came back <damaged>');
    expect(await row.locator('[data-field=requested_by]').innerText()).toBe('Dana');
    expect(await text(page, '#order-refund-reserved')).toBe('10.00 CNY pending');
    expect(await page.locator('#refund-amount').inputValue()).toBe('10.00');
    expect(await page.locator('#order-status [data-status]').getAttribute('data-status')).toBe('paid');
    expect(await text(page, '#timeline [data-kind=reconcile] strong')).toBe('Refund sent');
    expect(await text(page, '#timeline [data-kind=audit]')).toContain('requested by Dana');
    if (engine === 'sqlite') await page.screenshot({ path: `${SHOTS}/refund-pending.png`, fullPage: true });

    // The gateway's signed notification settles it.
    const [refund] = await refundRows(orderNo);
    expect(gateway.received.map((r) => new URLSearchParams(r.body).get('refund_no'))).toContain(refund!.refund_no);
    const notice = await request(ctx.app)
      .post('/notify')
      .type('form')
      .send(
        signed(
          {
            notify_type: 'refund',
            order_no: orderNo,
            refund_no: refund!.refund_no,
            refund_amount: '10.00',
            currency: 'CNY',
            status: 'refund_success',
            timestamp: nowSeconds(),
            nonce: uid('n'),
          },
          TEST_GATEWAY_SECRET,
          'HMAC-SHA256',
        ),
      );
    expect(notice.status, notice.text).toBe(200);
    await page.goto(`${base}/admin/orders/${orderNo}`);
    expect(await row.getAttribute('data-status')).toBe('succeeded');
    expect(await row.locator('.refund-badge').innerText()).toBe('Succeeded');
    expect(await text(page, '#order-refunded')).toBe('10.00 CNY');
    expect(await page.locator('#order-refund-reserved').count()).toBe(0);
    expect(await text(page, '#refund-rest')).toBe('10.00 CNY');
    expect(await text(page, '#timeline [data-refund=yes] strong')).toBe('Refund notification');
    if (engine === 'sqlite') await page.screenshot({ path: `${SHOTS}/refund-succeeded.png`, fullPage: true });

    // Once in Chinese.
    await Promise.all([page.waitForURL(/lang=zh-CN/), page.click('#lang-switch')]);
    expect(await page.locator('html').getAttribute('lang')).toBe('zh-CN');
    expect(await row.locator('.refund-badge').innerText()).toBe('退款成功');
    expect(await text(page, '#refund-button')).toBe('退款');
    expect(await text(page, '#timeline [data-refund=yes] strong')).toBe('退款通知');
    expect(await text(page, '#timeline [data-kind=reconcile] strong')).toBe('发起退款');
    expect(await text(page, 'label[for=refund-confirm]')).toBe('我确认这笔退款：款项将退回付款人，且无法撤回。');
    if (engine === 'sqlite') await page.screenshot({ path: `${SHOTS}/refund-zh.png`, fullPage: true });

    expect(problems).toEqual([]);
    await context.close();
  });
});
