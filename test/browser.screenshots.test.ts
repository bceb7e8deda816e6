import { mkdirSync } from 'node:fs';
import request from 'supertest';
import type { Browser, BrowserContextOptions, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, ensureOperator } from './helpers/admin.ts';
import { CHROMIUM, HAVE_CHROMIUM, serveWithBrowser } from './helpers/browser.ts';
import { createDeliveryContext, type DeliveryContext } from './helpers/delivery-context.ts';
import { toDbTime } from '../src/shared/time.ts';
import { gatewayParams, uid } from './helpers/pages.ts';
import { startReceiver, type Receiver } from './helpers/receiver.ts';

/**
 * The console and the result page in a real Chromium over a database with some traffic: PNGs of the dashboard,
 * an order's detail and a result page under test-results/ (desktop, and phone width), and wide tables on a
 * phone that say they scroll. docs/images/console.png is a copy of test-results/console-dashboard.png.
 */

const CI = process.env.CI === 'true';
const SHOTS = 'test-results';
const DESKTOP: BrowserContextOptions = { viewport: { width: 1280, height: 900 }, locale: 'en-US' };
const PHONE: BrowserContextOptions = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, locale: 'en-US' };

if (!HAVE_CHROMIUM && !CI) {
  console.warn(`\n${'!'.repeat(78)}\n!! ${CHROMIUM} not found: the screenshot browser tests were NOT run (apt-get install chromium).\n${'!'.repeat(78)}\n`);
}

/** Console errors, CSP reports, failed loads: a page that shows them is broken. */
function watch(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`console ${msg.type()}: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('response', (res) => {
    // The login page answers 401 until the password is given.
    if (res.status() >= 400 && !(res.status() === 401 && res.url().includes('/admin/login'))) problems.push(`HTTP ${res.status()}: ${res.url()}`);
  });
  return problems;
}

describe.skipIf(!HAVE_CHROMIUM && !CI)('console screenshots and phone layout in Chromium', () => {
  let ctx: DeliveryContext;
  let merchant: Receiver;
  let failing: Receiver;
  let served: Awaited<ReturnType<typeof serveWithBrowser>> | undefined;
  let base: string;
  let browser: Browser;
  let showcase: string;
  let historical = 0;

  /** A day of earlier traffic, written directly: a few paid orders and their callbacks in each past hour. */
  async function seedHistory() {
    const hour = 3_600_000;
    for (let h = 23; h >= 1; h--) {
      const at = (minute: number) => toDbTime(new Date(Date.now() - h * hour + minute * 60_000));
      const paid = 1 + ((h * 7) % 5);
      for (let i = 0; i < paid; i++) {
        const orderNo = uid('H');
        const amountMinor = 1000 + ((h * 31 + i * 17) % 90) * 100;
        await ctx.db.kysely
          .insertInto('orders')
          .values({
            order_no: orderNo,
            amount_minor: amountMinor,
            currency: 'CNY',
            status: 'paid',
            payment_method: 'generic',
            transaction_id: `TX${orderNo}`,
            paid_at: at(i + 1),
            created_at: at(i),
            updated_at: at(i + 1),
          })
          .execute();
        const verdicts = ['applied', ...(i === 0 && h % 3 === 0 ? ['duplicate'] : []), ...(i === 0 && h % 7 === 0 ? ['bad_signature'] : [])];
        for (const verdict of verdicts) {
          await ctx.db.kysely
            .insertInto('payment_logs')
            .values({
              order_no: orderNo,
              gateway: 'generic',
              kind: 'notify',
              transaction_id: `TX${orderNo}`,
              amount_minor: amountMinor,
              currency: 'CNY',
              status: 'paid',
              verdict,
              message: verdict,
              payment_data: null,
              callback_data: '',
              remote_ip: '203.0.113.10',
              created_at: at(i + 1),
              callback_bytes: null,
              callback_sha256: null,
              unverified: verdict === 'bad_signature' ? 1 : 0,
            })
            .execute();
        }
        historical += 1;
      }
    }
  }

  /** An order as a merchant would create it, then paid (or failed) through a signed gateway notification. */
  async function order(subject: string, amount: string, currency: string, outcome: 'success' | 'failed' | null, notifyUrl?: string): Promise<string> {
    const orderNo = uid('ORD');
    const created = await ctx
      .api('post', '/api/orders')
      .send({ order_no: orderNo, amount, currency, subject, payment_method: 'generic', notify_url: notifyUrl, callback_url: 'https://shop.example/return' });
    expect(created.status).toBe(201);
    if (outcome) {
      const res = await request(ctx.app)
        .post('/notify')
        .type('form')
        .send(gatewayParams(orderNo, { amount, currency, status: outcome }));
      expect(res.status).toBe(200);
    }
    return orderNo;
  }

  beforeAll(async () => {
    if (!HAVE_CHROMIUM) throw new Error(`CI=true but ${CHROMIUM} is missing: the browser tests must run in CI (.ci/run installs chromium).`);
    mkdirSync(SHOTS, { recursive: true });
    ctx = await createDeliveryContext('sqlite', { NOTIFY_RETRY_SCHEDULE: '10m,1h' });
    await ensureOperator(ctx.app, 'Mei', 'operator');
    merchant = await startReceiver((_n, res) => {
      res.setHeader('content-type', 'text/plain');
      res.end('success');
    });
    failing = await startReceiver((_n, res) => {
      res.statusCode = 503;
      res.end('maintenance');
    });
    showcase = await order('Annual plan, team of 5', '199.00', 'CNY', 'success', merchant.url);
    await order('Coffee beans 1 kg', '58.00', 'CNY', 'success', merchant.url);
    await order('Conference ticket', '349.00', 'USD', 'success', merchant.url);
    await order('Team seats (10)', '1280.00', 'CNY', 'success', failing.url);
    await order('T-shirt, size M', '89.00', 'CNY', 'failed', merchant.url);
    await order('Gift card', '200.00', 'CNY', null);
    const closed = await order('Notebook', '45.50', 'CNY', null, merchant.url);
    expect((await ctx.api('post', `/api/orders/${closed}/close`)).status).toBe(200);
    // What operators must look at: an unknown order, an amount that does not match, a forged signature.
    expect(
      (
        await request(ctx.app)
          .post('/notify')
          .type('form')
          .send(gatewayParams(uid('GHOST')))
      ).status,
    ).toBe(404);
    const pending = await order('Desk lamp', '129.00', 'CNY', null);
    expect(
      (
        await request(ctx.app)
          .post('/notify')
          .type('form')
          .send(gatewayParams(pending, { amount: '1.29' }))
      ).status,
    ).toBe(409);
    expect(
      (
        await request(ctx.app)
          .post('/notify')
          .type('form')
          .send({ ...gatewayParams(pending, { amount: '129.00' }), sign: 'FORGED' })
      ).status,
    ).toBe(401);
    await seedHistory();
    for (let i = 0; i < 400 && (await ctx.db.kysely.selectFrom('notification_attempts').select('id').execute()).length < 5; i++)
      await new Promise((r) => setTimeout(r, 25));
    served = await serveWithBrowser(ctx.app);
    ({ base, browser } = served);
  });
  afterAll(async () => {
    await served?.close();
    await Promise.all([merchant?.close(), failing?.close()]);
    await ctx?.close();
  });

  async function signIn(page: Page) {
    await page.goto(`${base}/admin/login`);
    await page.fill('#username', 'Mei');
    await page.fill('#password', ADMIN_PASSWORD);
    await Promise.all([page.waitForURL(/\/admin$/), page.click('#login-button')]);
  }

  /** Pays a fresh demo order in the sandbox and stays on its result page. */
  async function sandboxResult(page: Page) {
    await page.goto(`${base}/`);
    await page.fill('#subject', 'Green tea, 250 g');
    await page.fill('#amount', '36.00');
    await Promise.all([page.waitForURL(/\/sandbox\/pay\//), page.click('#create-order-button')]);
    await Promise.all([page.waitForURL(/\/callback\/sandbox\?/), page.click('#pay-button')]);
    expect(await page.locator('[data-result]').getAttribute('data-result')).toBe('success');
  }

  it('desktop: the dashboard, an order with a test notification, a result page', async () => {
    const context = await browser.newContext(DESKTOP);
    const page = await context.newPage();
    const problems = watch(page);
    await signIn(page);
    expect(await page.locator('#kpi-orders').innerText()).toBe(String(8 + historical));
    await page.screenshot({ path: `${SHOTS}/console-dashboard.png`, fullPage: true });

    await page.goto(`${base}/admin/orders/${showcase}`);
    await Promise.all([page.waitForURL(/test=\d+/), page.click('#test-button')]);
    expect(await page.locator('[data-field=test-outcome]').innerText()).toContain('Delivered');
    expect(await page.locator('#test-request').innerText()).toContain(`POST ${merchant.url}`);
    await page.evaluate('window.scrollTo(0, 0)');
    await page.screenshot({ path: `${SHOTS}/console-order-detail.png`, fullPage: true });

    await sandboxResult(page);
    await page.screenshot({ path: `${SHOTS}/result-success.png`, fullPage: true });
    expect(problems).toEqual([]);
    await context.close();
  });

  it('phone: the same pages fit the width, and a table wider than the screen shows edge shadows and a hint', async () => {
    const context = await browser.newContext(PHONE);
    const page = await context.newPage();
    const problems = watch(page);
    await signIn(page);
    const overflowsX = () => page.evaluate<boolean>('document.documentElement.scrollWidth > window.innerWidth');
    expect(await overflowsX()).toBe(false);
    await page.screenshot({ path: `${SHOTS}/console-dashboard-phone.png`, fullPage: true });

    await page.goto(`${base}/admin/orders/${showcase}`);
    expect(await overflowsX()).toBe(false);
    // The delivery attempts table is wider than a phone: it scrolls inside its box, says so, and shades its edge.
    // Strings, not functions: the project compiles without DOM typings.
    const box = 'document.querySelector(".table-responsive:has(table.attempts-table)")';
    await page.locator('.table-responsive.has-overflow:has(table.attempts-table)').waitFor({ timeout: 5000 });
    expect(await page.evaluate<boolean>(`${box}.scrollWidth > ${box}.clientWidth`)).toBe(true);
    const hint = page.locator('.scroll-hint').first();
    expect(await hint.isVisible()).toBe(true);
    expect(await hint.innerText()).toContain('Scroll sideways to see the whole table');
    expect(await page.evaluate<string>(`getComputedStyle(${box}).backgroundImage`)).toMatch(/radial-gradient.*radial-gradient/);
    expect(await page.evaluate<string>(`getComputedStyle(${box}.querySelector("td")).backgroundColor`)).toBe('rgba(0, 0, 0, 0)');
    await page.screenshot({ path: `${SHOTS}/console-order-detail-phone.png`, fullPage: true });

    // A table that fits gets no hint: the orders list drops columns and wraps long order numbers on a phone.
    await page.goto(`${base}/admin/orders`);
    await page.waitForTimeout(100);
    await page.screenshot({ path: `${SHOTS}/console-orders-phone.png`, fullPage: true });
    expect(await page.locator('.scroll-hint:visible').count()).toBe(0);
    expect(await page.locator('.table-responsive.has-overflow').count()).toBe(0);
    expect(
      await page.evaluate<boolean>(
        '[...document.querySelectorAll("#orders-table td.text-end")].every((td) => td.getBoundingClientRect().right <= window.innerWidth)',
      ),
    ).toBe(true);

    await sandboxResult(page);
    expect(await overflowsX()).toBe(false);
    await page.screenshot({ path: `${SHOTS}/result-success-phone.png`, fullPage: true });
    expect(problems).toEqual([]);
    await context.close();
  });
});
