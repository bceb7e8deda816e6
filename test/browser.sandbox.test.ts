import type { Browser, BrowserContextOptions, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, HAVE_CHROMIUM, serveWithBrowser } from './helpers/browser.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';
import { orderRow, paymentLogs } from './helpers/pages.ts';

/** DESIGN A8 in a real browser: create a demo order on `/`, pay it in the sandbox, land on the success page. */

const CI = process.env.CI === 'true';

if (!HAVE_CHROMIUM && !CI) {
  console.warn(`\n${'!'.repeat(78)}\n!! ${CHROMIUM} not found: the browser tests were NOT run (apt-get install chromium).\n${'!'.repeat(78)}\n`);
}

const DESKTOP: BrowserContextOptions = { viewport: { width: 1280, height: 800 } };
const MOBILE: BrowserContextOptions = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

/** Everything that would mean a broken page: console errors (CSP violations are reported there), page errors, failed loads. */
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

describe.skipIf(!HAVE_CHROMIUM && !CI).each(ENGINES)('sandbox in Chromium on %s', (engine) => {
  let ctx: TestContext;
  let served: Awaited<ReturnType<typeof serveWithBrowser>> | undefined;
  let base: string;
  let browser: Browser;

  beforeAll(async () => {
    if (!HAVE_CHROMIUM) throw new Error(`CI=true but ${CHROMIUM} is missing: the browser tests must run in CI (.ci/run installs chromium).`);
    ctx = await createTestContext(engine);
    served = await serveWithBrowser(ctx.app);
    ({ base, browser } = served);
  });

  afterAll(async () => {
    await served?.close();
    await ctx?.close();
  });

  /** The page fits its viewport: nothing scrolls sideways. */
  const overflowsX = (page: Page) => page.evaluate<boolean>('document.documentElement.scrollWidth > window.innerWidth');

  /** Creates an order through the form, pays it, and returns the page on the success result. */
  async function payThroughSandbox(options: BrowserContextOptions, subject: string, amount: string) {
    const context = await browser.newContext({ ...options, locale: 'en-US' });
    const page = await context.newPage();
    const problems = watch(page);
    await page.goto(`${base}/`);
    expect(await page.locator('h1').innerText()).toBe('Sandbox: create a demo order');
    await page.fill('#subject', subject);
    await page.fill('#amount', amount);
    await page.selectOption('#currency', 'CNY');
    await Promise.all([page.waitForURL(/\/sandbox\/pay\/[A-Za-z0-9_-]+$/), page.click('#create-order-button')]);
    const orderNo = new URL(page.url()).pathname.split('/').pop()!;
    expect(await page.locator('[data-field=order_no]').innerText()).toBe(orderNo);
    expect(await page.locator('[data-field=subject]').innerText()).toBe(subject);
    expect(await page.locator('#fail-button').isVisible()).toBe(true);
    expect(await overflowsX(page)).toBe(false);
    if (engine === 'sqlite') await page.screenshot({ path: `/tmp/sandbox-checkout${options.isMobile ? '-mobile' : ''}.png`, fullPage: true });
    await Promise.all([page.waitForURL(/\/callback\/sandbox\?/), page.click('#pay-button')]);
    await page.locator('[data-result=success]').waitFor();
    return { context, page, problems, orderNo };
  }

  it('desktop: / → create → checkout → pay → success page, no console errors or CSP violations', async () => {
    const { context, page, problems, orderNo } = await payThroughSandbox(DESKTOP, 'Browser demo <b>tea</b>', '42.50');
    expect(await page.locator('h1').innerText()).toBe('Payment successful');
    expect(await page.locator('[data-field=order_no]').innerText()).toBe(orderNo);
    expect(await page.locator('[data-field=amount]').innerText()).toBe('42.50');
    expect(await page.locator('[data-field=currency]').innerText()).toBe('CNY');
    expect(await page.locator('[data-field=status]').innerText()).toBe('Paid');
    expect(await page.locator('b').count()).toBe(0);
    expect(await page.locator('#new-order').getAttribute('href')).toBe('/');
    expect(await page.locator('#return-to-merchant').count()).toBe(0);
    // Bootstrap and app.css were applied (served by the app, not a CDN).
    // A string, not a function: the project compiles without DOM typings.
    const styles = await page.evaluate<{ font: string; radius: string; sheets: string[] }>(`({
      font: getComputedStyle(document.body).fontFamily,
      radius: getComputedStyle(document.querySelector('.card')).borderTopLeftRadius,
      sheets: [...document.styleSheets].map((s) => s.href),
    })`);
    expect(styles.font).toMatch(/system-ui|Segoe UI|Roboto/);
    expect(styles.radius).not.toBe('0px');
    expect(styles.sheets).toEqual([`${base}/assets/vendor/bootstrap/css/bootstrap.min.css`, `${base}/assets/css/app.css`]);
    expect(await overflowsX(page)).toBe(false);
    if (engine === 'sqlite') await page.screenshot({ path: '/tmp/sandbox-success.png', fullPage: true });

    expect((await orderRow(ctx, orderNo)).status).toBe('paid');
    const verdicts = (await paymentLogs(ctx, orderNo)).map((l) => `${l.gateway}/${l.kind}/${l.verdict}`);
    expect(verdicts).toEqual(['sandbox/notify/applied', 'sandbox/return/duplicate']);

    // The language switch keeps the result and shows it in Chinese.
    await Promise.all([page.waitForURL(/lang=zh-CN/), page.click('a[hreflang=zh-CN]')]);
    expect(await page.locator('h1').innerText()).toBe('支付成功');
    expect(await page.locator('html').getAttribute('lang')).toBe('zh-CN');
    expect(problems).toEqual([]);
    await context.close();
  });

  it('mobile (390 px): the flow works and the pages fit the screen', async () => {
    const { context, page, problems, orderNo } = await payThroughSandbox(MOBILE, 'Mobile demo order with a fairly long subject line', '1288.00');
    expect(await page.locator('[data-field=order_no]').innerText()).toBe(orderNo);
    expect(await page.locator('[data-field=amount]').innerText()).toBe('1288.00');
    expect(await overflowsX(page)).toBe(false);
    const box = (await page.locator('[data-result=success]').boundingBox())!;
    expect(box.x).toBeGreaterThanOrEqual(0);
    expect(box.x + box.width).toBeLessThanOrEqual(390);
    if (engine === 'sqlite') await page.screenshot({ path: '/tmp/sandbox-success-mobile.png', fullPage: true });
    await page.goto(`${base}/`);
    expect(await overflowsX(page)).toBe(false);
    if (engine === 'sqlite') await page.screenshot({ path: '/tmp/sandbox-home-mobile.png', fullPage: true });
    expect(problems).toEqual([]);
    await context.close();
  });
});
