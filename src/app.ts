import express, { type Express } from 'express';
import type { Store } from 'express-rate-limit';
import type { AppConfig } from './config.ts';
import type { Database } from './db/database.ts';
import { createApiKeyService } from './auth/api-key.service.ts';
import { healthRoutes } from './health/health.routes.ts';
import { ipAllowlist, rateLimiter, requireApiKey } from './http/api-guard.ts';
import { errorHandler, notFoundHandler } from './http/error-handler.ts';
import { requestLogger } from './http/request-logger.ts';
import { securityHeaders } from './http/security.ts';
import { orderRoutes } from './orders/order.routes.ts';
import { createOrderService } from './orders/order.service.ts';
import { queryOrderRoutes } from './orders/query-order.routes.ts';
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
}

const BODY_LIMIT = '64kb';

/** Builds the Express app without listening: main.ts serves it, tests drive it with supertest. */
export function createApp(deps: AppDeps): Express {
  const { config, db, logger } = deps;
  const clock = deps.clock ?? systemClock;
  const readDb = deps.readDb ?? db;
  const orders = createOrderService({ db, readDb, clock });
  const apiKeys = createApiKeyService(db, config.apiKeys, clock);

  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', config.trustProxy);
  app.set('views', VIEWS_DIR);
  app.set('view engine', 'ejs');

  app.use(requestLogger(logger));
  app.use(securityHeaders(config.tls !== null));
  app.use('/assets', express.static(PUBLIC_DIR, { maxAge: '30d', immutable: true, index: false }));
  app.use(express.json({ limit: BODY_LIMIT, type: ['application/json', 'application/*+json'] }));
  app.use(express.urlencoded({ extended: false, limit: BODY_LIMIT, parameterLimit: 256 }));

  app.use(healthRoutes(db));

  const apiGuard = [
    ipAllowlist(config.apiIpAllowlist, 'the API'),
    rateLimiter(config.rateLimitPerMinute, deps.rateLimitStore),
    requireApiKey(apiKeys),
  ];
  app.use('/api', ...apiGuard);
  app.use(['/query_order', '/query_order.php'], ...apiGuard);
  app.use('/api/orders', orderRoutes(orders));
  app.use(queryOrderRoutes(orders));

  app.use(notFoundHandler);
  app.use(errorHandler);
  return app;
}
