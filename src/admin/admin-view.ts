import type { Request, Response } from 'express';
import type { Csrf } from '../http/csrf.ts';
import { languageSwitchUrl, otherLang, pageLocals } from '../pages/i18n.ts';
import { operatorOf } from './admin-session.ts';
import { countText, fmtAge, fmtTime } from './format.ts';

export type NavKey = 'dashboard' | 'orders' | 'inbox' | 'settings';

/** Console navigation. */
export const NAV: Array<{ key: NavKey; href: string }> = [
  { key: 'dashboard', href: '/admin' },
  { key: 'orders', href: '/admin/orders' },
  { key: 'inbox', href: '/admin/inbox' },
  { key: 'settings', href: '/admin/settings' },
];

/** Outcome messages shown once after a redirect (`?flash=<key>`); anything else in the parameter is ignored. */
const FLASH = {
  closed: 'success',
  close_refused: 'danger',
  resent: 'success',
  resend_refused: 'danger',
  reviewed: 'success',
  already_reviewed: 'warning',
  review_invalid: 'danger',
  logged_out: 'info',
  password_changed: 'success',
  sessions_ended: 'success',
  settings_saved: 'success',
  settings_reset: 'success',
  settings_unchanged: 'info',
  test_url_invalid: 'danger',
  test_no_target: 'warning',
  sync_recovered: 'success',
  sync_already_paid: 'info',
  sync_unchanged: 'info',
  sync_closed: 'warning',
  sync_mismatch: 'warning',
  sync_not_queryable: 'danger',
  sync_gateway_error: 'danger',
  refund_created: 'success',
  refund_succeeded: 'success',
  refund_pending: 'warning',
  refund_failed: 'danger',
  refund_repeated: 'info',
  refund_exists: 'danger',
  refund_exceeds_paid: 'danger',
  refund_invalid_state: 'danger',
  refund_not_refundable: 'danger',
  refund_invalid: 'danger',
  refund_unconfirmed: 'warning',
} as const;
export type FlashKey = keyof typeof FLASH;

function flashOf(req: Request) {
  const key = req.query.flash;
  return typeof key === 'string' && Object.hasOwn(FLASH, key) ? { key: key as FlashKey, tone: FLASH[key as FlashKey] } : null;
}

/** Locals of every console page: language, CSRF token for its forms, operator, navigation, flash and formatters. */
export function consoleLocals(req: Request, res: Response, csrf: Csrf, active: NavKey | null, badges: Partial<Record<NavKey, number>> = {}) {
  const base = pageLocals(req, res);
  return {
    ...base,
    // The language switch must not repeat a one-time flash message.
    switchUrl: languageSwitchUrl(req, otherLang(base.lang), ['flash']),
    csrfToken: csrf.issue(req, res),
    operator: operatorOf(res),
    nav: NAV,
    active,
    badges,
    flash: flashOf(req),
    fmtTime,
    fmtAge: (seconds: number) => fmtAge(seconds, base.lang),
    /** `tn('admin_count_events', 3)` → "3 events": the message's singular or plural form. */
    tn: (key: string, n: number) => countText(base.t, base.lang, key, n),
    /** Beside translated statuses and verdicts, the raw code operators search logs and the API for. */
    codeLabels: base.lang !== 'en',
  };
}

/** `path` with the query `params` (empty values left out), for links that keep the current filters. */
export function withQuery(path: string, params: Record<string, string | number | undefined | null>): string {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== undefined && value !== null && value !== '') query.set(key, String(value));
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}
