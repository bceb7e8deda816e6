import { Router, type Request, type Response } from 'express';
import { rateLimit, type Store } from 'express-rate-limit';
import type { Csrf } from '../http/csrf.ts';
import { rateLimitLogger } from '../http/rate-limit-logger.ts';
import type { Operator } from '../operators/operator.rules.ts';
import type { OperatorService } from '../operators/operator.service.ts';
import type { Logger } from '../shared/logger.ts';
import { pageLocals } from '../pages/i18n.ts';
import type { AdminAuth } from './admin-session.ts';
import { safeNext } from './admin-session.ts';

export const LOGIN_WINDOW_MS = 15 * 60_000;
export const LOGIN_ATTEMPTS = 10;

type LoginError = 'wrong_credentials' | 'locked' | 'too_many';

/** Signs in an account that has passed every step: audit row and failure reset, session cookie, then on to `next`. */
export type FinishLogin = (req: Request, res: Response, operator: Operator, method?: 'password' | 'password+totp') => Promise<void>;

/**
 * The seam of a second sign-in step (TOTP). Called after a right password: null when the account needs no second
 * step, else the handler that starts it (it keeps the pending sign-in itself and calls `finish` once the step passes).
 */
export type SecondStep = (operator: Operator) => ((req: Request, res: Response, finish: FinishLogin) => Promise<void>) | null;
export const noSecondStep: SecondStep = () => null;

export interface LoginDeps {
  auth: AdminAuth;
  csrf: Csrf;
  operators: Pick<OperatorService, 'authenticate' | 'completeLogin'>;
  secondStep?: SecondStep;
  /** Shared failed-login counters per address (Redis); in this process when absent. */
  store?: Store;
  logger?: Logger;
}

/** After a one-time password the account page comes first: nothing else in the console opens until it is changed. */
export const ACCOUNT_PATH = '/admin/account';

export function loginFinisher(auth: AdminAuth, operators: Pick<OperatorService, 'completeLogin'>): FinishLogin {
  return async (req, res, operator, method = 'password') => {
    await operators.completeLogin(operator, req.ip ?? null, method);
    auth.signIn(req, res, operator);
    req.log?.info({ clientIp: req.ip, operator: operator.username }, 'console login');
    res.redirect(303, operator.mustChangePassword ? ACCOUNT_PATH : safeNext(req.query.next));
  };
}

/**
 * `/admin/login` and `/admin/logout`. Failed logins are limited per client address (successful ones do not count;
 * the counters are in `store`, shared by every instance, when given) and per account (operator-login.ts).
 */
export function loginRoutes(deps: LoginDeps): Router {
  const { auth, csrf, operators } = deps;
  const secondStep = deps.secondStep ?? noSecondStep;
  const finish = loginFinisher(auth, operators);
  const router = Router();

  const render = (req: Request, res: Response, status: number, error: LoginError | null, username = '') => {
    const next = safeNext(req.query.next);
    const flash = req.query.flash === 'logged_out' ? 'logged_out' : null;
    res.status(status).render('admin/login', { ...pageLocals(req, res), csrfToken: csrf.issue(req, res), next, error, username, flash });
  };

  const limiter = rateLimit({
    logger: rateLimitLogger(deps.logger, 'console-login'),
    windowMs: LOGIN_WINDOW_MS,
    limit: LOGIN_ATTEMPTS,
    skipSuccessfulRequests: true,
    standardHeaders: 'draft-7',
    legacyHeaders: false,
    validate: { trustProxy: false, xForwardedForHeader: false },
    handler: (req, res) => render(req, res, 429, 'too_many'),
    store: deps.store,
    // Like the API's limit: with Redis out of reach logins are not counted, rather than operators locked out.
    passOnStoreError: true,
  });

  router.get('/login', async (req, res) => {
    if (await auth.load(req)) return res.redirect(303, safeNext(req.query.next));
    render(req, res, 200, null);
  });

  // The limiter runs first: even requests with a broken form count against the address once they fail.
  router.post('/login', limiter, csrf.verify, async (req, res) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const typed = typeof body.username === 'string' ? body.username.slice(0, 64) : '';
    const result = await operators.authenticate(body.username, body.password, req.ip ?? null);
    if (result.kind !== 'ok') {
      req.log?.warn({ clientIp: req.ip, outcome: result.kind }, 'console login failed');
      // 423 while locked, and the same 401 and message for an unknown user, a wrong password and a disabled account.
      return result.kind === 'locked' ? render(req, res, 423, 'locked', typed) : render(req, res, 401, 'wrong_credentials', typed);
    }
    const step = secondStep(result.operator);
    if (step) return step(req, res, finish);
    await finish(req, res, result.operator);
  });

  router.post('/logout', csrf.verify, (req, res) => {
    auth.signOut(req, res);
    res.redirect(303, '/admin/login?flash=logged_out');
  });

  return router;
}
