import type { Request, Response } from 'express';
import type { AppConfig } from '../config.ts';
import type { OrderRow } from '../orders/order.repository.ts';
import { formatAmount } from '../shared/money.ts';
import { computeSign } from '../shared/signing.ts';
import { otherLang, pageLocals, type Lang } from '../pages/i18n.ts';
import type { CallbackOutcome } from './gateways/gateway.ts';

type PageKind = 'success' | 'failure' | 'pending' | 'closed';

const KIND_BY_STATUS: Record<string, PageKind> = { paid: 'success', failed: 'failure', pending: 'pending', closed: 'closed' };

/** Result pages of `/callback`: success for paid, failure otherwise, with a signed way back to the merchant. */
export function createResultPages(config: AppConfig) {
  /** callback_url + signed order_no, status, amount, currency, timestamp, sign_type, sign (A7's rule, NOTIFY_SECRET). */
  function returnUrl(order: OrderRow, now: Date): string | null {
    if (!order.callback_url) return null;
    const params = {
      order_no: order.order_no,
      status: order.status,
      amount: formatAmount(order.amount_minor, order.currency),
      currency: order.currency,
      timestamp: String(Math.floor(now.getTime() / 1000)),
      sign_type: config.notify.signType,
    };
    const url = new URL(order.callback_url);
    for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
    url.searchParams.set('sign', computeSign(params, config.secrets.NOTIFY_SECRET, config.notify.signType));
    return url.toString();
  }

  /**
   * After a POSTed return the language switch must carry the signed parameters (as a GET, which /callback
   * accepts alike); a bare `?lang=` link would lead to a page that cannot be verified.
   */
  function postedSwitchUrl(req: Request, lang: Lang): string | undefined {
    const body = req.body as Record<string, unknown> | undefined;
    if (req.method !== 'POST' || typeof body !== 'object' || body === null) return undefined;
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(body)) {
      if (key !== 'lang' && (typeof value === 'string' || typeof value === 'number')) query.append(key, String(value));
    }
    query.set('lang', otherLang(lang));
    // Query only, like every language switch (i18n.ts): the browser keeps the path it POSTed to.
    return `?${query.toString()}`;
  }

  function renderOrder(req: Request, res: Response, order: OrderRow, httpStatus: number, notice?: string) {
    const kind = KIND_BY_STATUS[order.status] ?? 'failure';
    const locals = pageLocals(req, res);
    res.status(httpStatus).render('result', {
      ...locals,
      switchUrl: postedSwitchUrl(req, locals.lang) ?? locals.switchUrl,
      kind,
      notice,
      order: {
        order_no: order.order_no,
        amount: formatAmount(order.amount_minor, order.currency),
        currency: order.currency,
        status: order.status,
        subject: order.subject,
      },
      returnUrl: returnUrl(order, new Date()),
      // A sandbox order has no merchant to return to: offer the way back to the demo form instead.
      sandboxHome: config.sandboxEnabled && order.payment_method === 'sandbox',
    });
  }

  /** A request we could not verify or attach to an order: the failure page with nothing about any order. */
  function renderRejection(req: Request, res: Response, httpStatus: number, message: string) {
    res.status(httpStatus).render('result', { ...pageLocals(req, res), kind: 'rejected', notice: message, order: null, returnUrl: null, sandboxHome: false });
  }

  function renderOutcome(req: Request, res: Response, outcome: CallbackOutcome) {
    if (!outcome.order) {
      // Bad signature, malformed or unknown order: 400 and nothing changed (A5). Forbidden stays 403, rate limited 429.
      const status = outcome.status === 403 || outcome.status === 429 || outcome.status >= 500 ? outcome.status : 400;
      return renderRejection(req, res, status, outcome.message);
    }
    if (outcome.verdict === 'amount_mismatch') return renderRejection(req, res, 409, outcome.message);
    // A verified request whose nonce was used before is the shopper reloading the page: show the order as it stands.
    const quiet = outcome.verdict === 'applied' || outcome.verdict === 'duplicate' || outcome.verdict === 'replayed';
    renderOrder(req, res, outcome.order, 200, quiet ? undefined : outcome.message);
  }

  return { renderOutcome, renderRejection, renderOrder };
}

export type ResultPages = ReturnType<typeof createResultPages>;
