import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reconcilerOf } from '../src/app.ts';
import { CHROMIUM, HAVE_CHROMIUM, serveWithBrowser } from './helpers/browser.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';

/** A newcomer's path in a real browser: pay in the sandbox but lose the notification, and watch the reconciler find the payment. */

const CI = process.env.CI === 'true';

interface PaymentJson {
  gateway: string;
  kind: string;
  verdict: string;
  status: string;
  amount: string | null;
  transaction_id: string | null;
}

/** Console errors and warnings (CSP violations among them), page errors, failed loads and HTTP errors. */
function watch(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`console ${msg.type()}: ${msg.text()} ${msg.location().url}`.trim());
  });
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('requestfailed', (req) => problems.push(`request failed: ${req.url()} ${req.failure()?.errorText ?? ''}`));
  page.on('response', (res) => {
    if (res.status() >= 400) problems.push(`HTTP ${res.status()}: ${res.url()}`);
  });
  return problems;
}

describe.skipIf(!HAVE_CHROMIUM && !CI).each(ENGINES)('lost notification recovered, in Chromium on %s', (engine) => {
  let ctx: TestContext;
  let served: Awaited<ReturnType<typeof serveWithBrowser>> | undefined;
  let base: string;
  let browser: Browser;

  beforeAll(async () => {
    if (!HAVE_CHROMIUM) throw new Error(`CI=true but ${CHROMIUM} is missing: the browser tests must run in CI (.ci/run installs chromium).`);
    ctx = await createTestContext(engine, { env: { RECONCILE_AFTER: '1s', NOTIFY_POLL_INTERVAL_MS: '200' } });
    served = await serveWithBrowser(ctx.app);
    ({ base, browser } = served);
  });

  afterAll(async () => {
    if (ctx) await reconcilerOf(ctx.app).stop();
    await served?.close();
    await ctx?.close();
  });

  /** Creates a demo order on `/` and returns its number, the page left on the sandbox checkout. */
  async function createDemoOrder(page: Page, query = ''): Promise<string> {
    await page.goto(`${base}/${query}`);
    await page.fill('#subject', 'Lost notification demo');
    await page.fill('#amount', '18.80');
    await page.selectOption('#currency', 'CNY');
    await Promise.all([page.waitForURL(/\/sandbox\/pay\/[A-Za-z0-9_-]+$/), page.click('#create-order-button')]);
    const orderNo = new URL(page.url()).pathname.split('/').pop()!;
    expect(await page.locator('[data-field=order_no]').innerText()).toBe(orderNo);
    return orderNo;
  }

  const orderDetail = async (orderNo: string) => {
    const res = await ctx.api('get', `/api/orders/${orderNo}`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body.data as { status: string; transaction_id: string | null; paid_at: string | null; payments: PaymentJson[] };
  };

  it('/ → create → checkout → "Pay, but lose the notification" → lost notice refreshing → reconciler → recovered, paid by a query', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-US' });
    const page = await context.newPage();
    const problems = watch(page);
    const orderNo = await createDemoOrder(page);
    expect(await page.locator('#lose-button').innerText()).toBe('Pay, but lose the notification');

    await Promise.all([page.waitForURL(/\/sandbox\/pay\/[A-Za-z0-9_-]+\?lost=1$/), page.click('#lose-button')]);
    const lost = page.locator('#lost-notice');
    expect(await lost.innerText()).toBe(
      'Paid at the sandbox gateway, and its notification was lost on purpose. The service asks the gateway about pending orders after 1 s and will find the payment; this page refreshes by itself.',
    );
    expect(await page.locator('meta[http-equiv=refresh]').getAttribute('content')).toBe('2');
    expect(await page.locator('#lose-button').count()).toBe(0);
    if (engine === 'sqlite') await page.screenshot({ path: '/tmp/sandbox-lost.png', fullPage: true });

    // Nothing reached the service: no reconciler is running yet, so the order stays pending with no payment.
    const before = await orderDetail(orderNo);
    expect(before).toMatchObject({ status: 'pending', transaction_id: null, paid_at: null, payments: [] });

    let loads = 0;
    page.on('load', () => loads++);
    reconcilerOf(ctx.app).start();
    try {
      // The page refreshes itself (no reload from here) until the reconciler has found the payment.
      await page.locator('#recovered-notice').waitFor({ timeout: 20_000 });
    } finally {
      await reconcilerOf(ctx.app).stop();
    }
    expect(loads).toBeGreaterThanOrEqual(1);
    expect(new URL(page.url()).search).toBe('?lost=1');
    expect(await page.locator('#recovered-notice').innerText()).toBe(
      'The lost payment was found by asking the gateway: the order is paid. Its timeline in the console shows the query.',
    );
    expect(await page.locator('#lost-notice').count()).toBe(0);
    expect(await page.locator('meta[http-equiv=refresh]').count()).toBe(0);
    expect(await page.locator('[data-field=status]').innerText()).toBe('Paid');
    if (engine === 'sqlite') await page.screenshot({ path: '/tmp/sandbox-recovered.png', fullPage: true });

    const after = await orderDetail(orderNo);
    expect(after.status).toBe('paid');
    expect(after.paid_at).not.toBeNull();
    expect(after.payments).toHaveLength(1);
    expect(after.payments[0]).toMatchObject({ gateway: 'sandbox', kind: 'query', source: 'query', verdict: 'applied', status: 'paid', amount: '18.80' });
    expect(after.transaction_id).toBeTruthy();
    expect(after.payments[0]!.transaction_id).toBe(after.transaction_id);
    expect(problems).toEqual([]);
    await context.close();
  });

  it('?lang=zh-CN: the checkout offers the third button in Chinese, and the lost notice is in Chinese', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-US' });
    const page = await context.newPage();
    const problems = watch(page);
    const orderNo = await createDemoOrder(page, '?lang=zh-CN');
    expect(await page.locator('html').getAttribute('lang')).toBe('zh-CN');
    expect(await page.locator('#lose-button').innerText()).toBe('支付，但丢失通知');
    await Promise.all([page.waitForURL(/\?lost=1$/), page.click('#lose-button')]);
    expect(await page.locator('#lost-notice').innerText()).toBe(
      '已在沙箱网关支付，且通知被故意丢弃。服务会在 1 秒后向网关查询待支付订单并找回这笔支付；本页面会自动刷新。',
    );
    expect((await orderDetail(orderNo)).status).toBe('pending');
    expect(problems).toEqual([]);
    await context.close();
  });
});
