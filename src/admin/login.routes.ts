import { Router, type Request, type Response } from 'express';
import { rateLimit, type Store } from 'express-rate-limit';
import type { Csrf } from '../http/csrf.ts';
import { rateLimitLogger } from '../http/rate-limit-logger.ts';
import type { Logger } from '../shared/logger.ts';
import { pageLocals } from '../pages/i18n.ts';
import type { AdminAuth } from './admin-session.ts';
import { safeNext } from './admin-session.ts';

export const LOGIN_WINDOW_MS = 15 * 60_000;
export const LOGIN_ATTEMPTS = 10;

/** A single line of printable text for the audit log; `admin` when nothing usable was given. */
function operatorName(value: unknown): string {
  const name = typeof value === 'string' ? Array.from(value.replace(/\p{C}/gu, '').trim()).slice(0, 64).join('') : '';
  return name || 'admin';
}

/**
 * `/admin/login` and `/admin/logout`. Failed logins are limited per client address; successful ones do not
 * count. The counters are in `store` (Redis, shared by every instance) when given, else in this process.
 */
export function loginRoutes(auth: AdminAuth, csrf: Csrf, store?: Store, logger?: Logger): Router {
  const router = Router();

  const render = (req: Request, res: Response, status: number, error: 'wrong_password' | 'too_many' | null, name = '') => {
    const next = safeNext(req.query.next);
    const flash = req.query.flash === 'logged_out' ? 'logged_out' : null;
    res.status(status).render('admin/login', { ...pageLocals(req, res), csrfToken: csrf.issue(req, res), next, error, name, flash });
  };

  const limiter = rateLimit({
    logger: rateLimitLogger(logger, 'console-login'),
    windowMs: LOGIN_WINDOW_MS,
    limit: LOGIN_ATTEMPTS,
    skipSuccessfulRequests: true,
    standardHeaders: 'draft-7',
    legacyHeaders: false,
    validate: { trustProxy: false, xForwardedForHeader: false },
    handler: (req, res) => render(req, res, 429, 'too_many'),
    store,
    // Like the API's limit: with Redis out of reach logins are not counted, rather than operators locked out.
    passOnStoreError: true,
  });

  router.get('/login', (req, res) => {
    if (auth.current(req)) return res.redirect(303, safeNext(req.query.next));
    render(req, res, 200, null);
  });

  // The limiter runs first: even requests with a broken form count against the address once they fail.
  router.post('/login', limiter, csrf.verify, (req, res) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    if (!auth.checkPassword(body.password)) {
      req.log?.warn({ clientIp: req.ip }, 'console login failed');
      return render(req, res, 401, 'wrong_password', typeof body.operator === 'string' ? body.operator.slice(0, 64) : '');
    }
    const operator = operatorName(body.operator);
    auth.signIn(req, res, operator);
    req.log?.info({ clientIp: req.ip, operator }, 'console login');
    res.redirect(303, safeNext(req.query.next));
  });

  router.post('/logout', csrf.verify, (req, res) => {
    auth.signOut(req, res);
    res.redirect(303, '/admin/login?flash=logged_out');
  });

  return router;
}
