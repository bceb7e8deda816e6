import { Router, type ErrorRequestHandler } from 'express';
import type { Store } from 'express-rate-limit';
import type { AppConfig } from '../config.ts';
import type { Database } from '../db/database.ts';
import type { Csrf } from '../http/csrf.ts';
import type { NotificationService } from '../notifications/notification.service.ts';
import type { OrderService } from '../orders/order.service.ts';
import type { ReconcileService } from '../reconcile/reconcile.service.ts';
import type { RefundService } from '../refunds/refund.service.ts';
import type { RuntimeSettings } from '../settings/runtime-settings.ts';
import { createOperatorService } from '../operators/operator.service.ts';
import { AppError, NotFoundError } from '../shared/errors.ts';
import { weakPasswordReason } from '../system/secret-strength.ts';
import type { Logger } from '../shared/logger.ts';
import type { Clock } from '../shared/time.ts';
import { accountRoutes, requirePasswordChanged } from './account.routes.ts';
import { createAdminAuth } from './admin-session.ts';
import { dashboardRoutes } from './dashboard.routes.ts';
import { createDashboardService } from './dashboard.service.ts';
import { createInbox } from './inbox.service.ts';
import { inboxRoutes } from './inbox.routes.ts';
import { loginRoutes, type SecondStep } from './login.routes.ts';
import { createOrderRefund } from './order-refund.service.ts';
import { createOrderSync } from './order-sync.service.ts';
import { createConsoleOrders } from './orders.service.ts';
import { consoleOrderRoutes } from './orders.routes.ts';
import { consoleRenderer } from './render-console.ts';
import { settingsRoutes } from './settings.routes.ts';
import { createConsoleSettings } from './settings.service.ts';
import { createTestNotifications } from './test-notification.service.ts';

export interface AdminDeps {
  config: AppConfig;
  db: Database;
  /** Replica for the dashboard and the order list; the primary when absent. */
  readDb?: Database;
  clock: Clock;
  orders: OrderService;
  notifications: NotificationService;
  csrf: Csrf;
  /** Asks gateways about orders: the order page's "Ask the gateway now" and its looks on the timeline. */
  reconcile: Pick<ReconcileService, 'isQueryable' | 'syncOrder'>;
  /** Refunds: the order page's refund form (create takes an in-transaction hook for the audit row). */
  refunds: Pick<RefundService, 'create' | 'isRefundable'>;
  /** Runtime settings (retry schedule, callback allowlists) edited on the settings page. */
  settings: RuntimeSettings;
  /** Shared failed-login counters (Redis) for several instances; in this process's memory when absent. */
  loginRateLimitStore?: Store;
  /** Where the login limiter says that its store is out of reach. */
  logger?: Logger;
  /** The second sign-in step after a right password (TOTP); none when absent. */
  secondStep?: SecondStep;
}

/** The operator console under `/admin`: login, dashboard, orders, flagged inbox, settings. */
export function adminRoutes(deps: AdminDeps): Router {
  const { config, db, clock } = deps;
  const readDb = deps.readDb ?? db;
  // Chosen passwords follow the rules production holds ADMIN_PASSWORD to.
  const operators = createOperatorService({ db, clock, passwordPolicy: weakPasswordReason });
  const auth = createAdminAuth({ secret: config.secrets.SESSION_SECRET, clock, operators });
  // Signed in, a form's token is bound to the session: a (cookie, token) pair planted from elsewhere never passes.
  const csrf = deps.csrf.forSession((req) => auth.current(req)?.sid ?? null);
  const inbox = createInbox({ db, clock });
  const render = consoleRenderer(csrf, inbox);
  const router = Router();

  router.use((_req, res, next) => {
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('X-Robots-Tag', 'noindex');
    next();
  });
  router.use(loginRoutes({ auth, csrf, operators, secondStep: deps.secondStep, store: deps.loginRateLimitStore, logger: deps.logger }));
  // Every state-changing request needs the form's CSRF token, signed in or not: 403 before anything else.
  router.use((req, res, next) => (req.method === 'GET' || req.method === 'HEAD' ? next() : csrf.verify(req, res, next)));
  router.use(auth.requireAdmin);
  router.use(accountRoutes({ auth, operators, render }));
  router.use(requirePasswordChanged);

  router.use(dashboardRoutes(createDashboardService({ readDb, clock, notifications: deps.notifications }), render));
  const tests = createTestNotifications({ db, clock, config });
  const { orders, notifications, reconcile, refunds } = deps;
  const consoleOrders = createConsoleOrders({ db, readDb, clock, orders, notifications, reconcile, refunds });
  const actions = { sync: createOrderSync({ db, clock, reconcile }), refund: createOrderRefund({ db, clock, refunds }) };
  router.use('/orders', consoleOrderRoutes(consoleOrders, actions, tests, render));
  router.use('/inbox', inboxRoutes(inbox, render));
  router.use('/settings', settingsRoutes(createConsoleSettings({ db, settings: deps.settings }), render));

  router.use(() => {
    throw new NotFoundError('No such console page');
  });
  const consoleErrors: ErrorRequestHandler = (err, req, res, next) => {
    if (!(err instanceof AppError) || res.headersSent) return next(err);
    render(req, res, 'admin/error', null, { status: err.status, code: err.code, message: err.message }, err.status).catch(next);
  };
  router.use(consoleErrors);
  return router;
}
