import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import express, { type Express } from 'express';
import type { Store } from 'express-rate-limit';
import type { AppConfig } from './config.ts';
import type { Database } from './db/database.ts';
import { adminRoutes } from './admin/admin.routes.ts';
import { createApiKeyService } from './auth/api-key.service.ts';
import { formBody, jsonBody } from './http/body-parsers.ts';
import { callbackRoutes } from './callbacks/callback.routes.ts';
import { createCallbackService } from './callbacks/callback.service.ts';
import { createGatewayAdapters, gatewayRoutes } from './callbacks/gateway.routes.ts';
import { createGenericGateway } from './callbacks/gateways/generic.ts';
import { createRejectLimiter } from './callbacks/reject-limiter.ts';
import { healthRoutes } from './health/health.routes.ts';
import { ipAllowlist, rateLimiter, requireApiKey } from './http/api-guard.ts';
import { createCsrf } from './http/csrf.ts';
import { errorHandler, notFoundHandler } from './http/error-handler.ts';
import { requestLogger } from './http/request-logger.ts';
import { securityHeaders } from './http/security.ts';
import { httpMetrics } from './metrics/http-metrics.ts';
import { bindMetrics, createMetrics } from './metrics/metrics.registry.ts';
import { metricsRoutes } from './metrics/metrics.routes.ts';
import { notificationRoutes } from './notifications/notification.routes.ts';
import { createNotificationService } from './notifications/notification.service.ts';
import { openApiRoutes } from './openapi/openapi.routes.ts';
import type { DeliveryMetrics } from './notifications/delivery.metrics.ts';
import { orderRoutes } from './orders/order.routes.ts';
import { createOrderService } from './orders/order.service.ts';
import { queryOrderRoutes } from './orders/query-order.routes.ts';
import { createResultPages } from './callbacks/result.page.ts';
import { reconcileRoutes } from './reconcile/reconcile.routes.ts';
import type { RefundChecker } from './refunds/refund-checker.ts';
import { orderRefundRoutes, refundRoutes } from './refunds/refund.routes.ts';
import { sandboxRoutes } from './sandbox/sandbox.routes.ts';
import type { Reconciler } from './reconcile/reconciler.ts';
import { createGatewayCalls } from './gateway-calls.ts';
import { createSandboxService } from './sandbox/sandbox.service.ts';
import { createRuntimeSettings, type RuntimeSettings } from './settings/runtime-settings.ts';
import type { Logger } from './shared/logger.ts';
import { PUBLIC_DIR, VIEWS_DIR } from './shared/paths.ts';
import { systemClock, type Clock } from './shared/time.ts';

export interface AppDeps {
  config: AppConfig;
  db: Database;
  /** Read replica for the query endpoints (DATABASE_READ_URL); defaults to `db`. */
  readDb?: Database;
  logger: Logger;
  clock?: Clock;
  /** Shared rate-limit counters (Redis) for several instances; in-memory when absent. */
  rateLimitStore?: Store;
  /** Shared failed-login counters of the console (Redis); in-memory when absent. */
  loginRateLimitStore?: Store;
  /** Shared counters of rejected callbacks per address (Redis); in-memory when absent. */
  rejectRateLimitStore?: Store;
  /** Called after a commit that queued a merchant notification (wakes the delivery loop). */
  onEventQueued?: () => void;
  /** Outcome counters of this process's delivery loop, when it runs one. */
  deliveryMetrics?: DeliveryMetrics;
  /** The reconcile loop's own pool (main.ts gives it the delivery loop's); `db` when absent. */
  reconcileDb?: Database;
  /** Runtime settings shared with the delivery loop (main starts them); created here, unstarted, when absent. */
  settings?: RuntimeSettings;
}

/** What an app started itself and must end before its pools close (see stopApp). */
const OWNED = new WeakMap<object, () => Promise<void>>();

const LOOPS = new WeakMap<object, { reconciler: Reconciler; refundChecker: RefundChecker }>();

/** The app's reconcile loop (unstarted: main.ts starts it in the worker process; tests run it step by step). */
export function reconcilerOf(app: Express): Reconciler {
  return LOOPS.get(app)!.reconciler;
}

/** The app's pending-refund loop (part of reconciliation: started and stopped with the reconcile loop). */
export function refundCheckerOf(app: Express): RefundChecker {
  return LOOPS.get(app)!.refundChecker;
}

/** Ends the background work of what createApp made itself (runtime settings it was not given); resolves when it has finished. */
export async function stopApp(app: Express): Promise<void> {
  await OWNED.get(app)?.();
}

const BOOTSTRAP_DIR = join(dirname(createRequire(import.meta.url).resolve('bootstrap/package.json')), 'dist');
const STATIC_OPTIONS = { maxAge: '30d', immutable: true, index: false } as const;

/** Builds the Express app without listening: main.ts serves it, tests drive it with supertest. */
export function createApp(deps: AppDeps): Express {
  const { config, db, logger, onEventQueued } = deps;
  const clock = deps.clock ?? systemClock;
  const readDb = deps.readDb ?? db;
  const settings = deps.settings ?? createRuntimeSettings({ db, config, clock, logger });
  const orders = createOrderService({
    db,
    readDb,
    clock,
    onEventQueued,
    orderTtlMs: config.orderTtlMs,
    reconcileAfterMs: config.reconcile.afterMs,
  });
  const apiKeys = createApiKeyService(db, config.apiKeys, clock);
  const notifications = createNotificationService({ db, clock, metrics: deps.deliveryMetrics, onEventQueued });
  const metrics = createMetrics({
    deliveryMetrics: deps.deliveryMetrics,
    deliveryStats: notifications.deliveryMetrics,
    onStatsError: (err) => logger.warn({ err }, 'metrics: the notification backlog could not be read'),
  });
  // Few callback transactions at a time make big groups (measured: 2 beat 4 and 8); two, so one waiting on a lock stalls nobody.
  const callbackTransactions = db.engine === 'sqlite' ? 1 : Math.min(2, Math.max(1, Math.floor(config.database.poolSize / 4)));
  const rejectLimiter =
    config.callbackRejectRatePerMinute === null
      ? null
      : createRejectLimiter({
          perMinute: config.callbackRejectRatePerMinute,
          store: deps.rejectRateLimitStore,
          onStoreError: (err) => logger.warn({ err }, 'rejected-callback counters: Redis out of reach, counting in this process'),
        });
  const callbacks = createCallbackService({
    db,
    clock,
    allowlist: settings.callbackAllowlist,
    onEventQueued,
    recordCallback: metrics.recordCallback,
    recordCallbackGroup: metrics.recordCallbackGroup,
    maxRunningTransactions: callbackTransactions,
    rejectLimiter,
    recordRejectDropped: metrics.recordRejectDropped,
  });
  metrics.observeCallbackQueue(callbacks.queuedCallbacks);
  const generic = createGenericGateway('generic', config.secrets.GATEWAY_SECRET);
  const gatewayCalls = createGatewayCalls({ config, db, readDb, loopDb: deps.reconcileDb, clock, logger, callbacks, orders, metrics, onEventQueued });
  const { reconcile, reconciler, refunds, sandboxBooks, sandboxGateway } = gatewayCalls;
  const pages = createResultPages(config);
  const csrf = createCsrf(config.secrets.SESSION_SECRET);

  const app = express();
  bindMetrics(app, metrics);
  LOOPS.set(app, { reconciler, refundChecker: refunds.checker });
  OWNED.set(app, async () => {
    await gatewayCalls.stop();
    if (!deps.settings) await settings.stop();
  });
  app.disable('x-powered-by');
  app.set('trust proxy', config.trustProxy);
  app.set('views', VIEWS_DIR);
  app.set('view engine', 'ejs');
  // Error pages link home only where there is one (the demo page lives with the sandbox).
  app.locals.homeLink = config.sandboxEnabled;

  app.use(httpMetrics(metrics));
  app.use(requestLogger(logger));
  app.use(securityHeaders(config.tls !== null));
  // Gateways first, with their own body readers: the busiest path skips everything it does not need.
  app.use(callbackRoutes(callbacks, generic, pages));
  app.use(gatewayRoutes(callbacks, createGatewayAdapters(config), pages));
  app.use('/assets/vendor/bootstrap', express.static(BOOTSTRAP_DIR, STATIC_OPTIONS));
  app.use('/assets', express.static(PUBLIC_DIR, STATIC_OPTIONS));
  app.use(jsonBody(), formBody());

  app.use(healthRoutes(db));
  app.use(metricsRoutes(metrics, config.metricsToken));
  app.use(openApiRoutes());

  const apiGuard = [ipAllowlist(config.apiIpAllowlist, 'the API'), rateLimiter(config.rateLimitPerMinute, deps.rateLimitStore, logger), requireApiKey(apiKeys)];
  app.use('/api', ...apiGuard);
  app.use(['/query_order', '/query_order.php'], ...apiGuard);
  app.use('/api/orders', orderRoutes(orders));
  app.use('/api/orders', notificationRoutes(notifications));
  app.use('/api/orders', reconcileRoutes(reconcile));
  app.use('/api/orders', orderRefundRoutes(refunds.service));
  app.use('/api/refunds', refundRoutes(refunds.service));
  app.use(queryOrderRoutes(orders));

  if (sandboxBooks) {
    const sandbox = createSandboxService({
      db,
      orders,
      callbacks,
      gateway: sandboxGateway,
      gatewaySecret: config.secrets.GATEWAY_SECRET,
      clock,
      books: sandboxBooks,
      reconcileAfterMs: config.reconcile.afterMs,
    });
    app.use(sandboxRoutes(sandbox, csrf, pages));
  }

  app.use(
    '/admin',
    adminRoutes({
      config,
      db,
      readDb,
      clock,
      orders,
      notifications,
      reconcile,
      refunds: refunds.service,
      csrf,
      settings,
      loginRateLimitStore: deps.loginRateLimitStore,
      logger,
    }),
  );

  app.use(notFoundHandler);
  app.use(errorHandler);
  return app;
}
