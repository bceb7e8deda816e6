import type { AppConfig } from './config.ts';
import type { CallbackService } from './callbacks/callback.service.ts';
import { createGenericGateway } from './callbacks/gateways/generic.ts';
import type { Database } from './db/database.ts';
import type { AppMetrics } from './metrics/metrics.registry.ts';
import type { OrderService } from './orders/order.service.ts';
import { createGatewayClients, createRefundClients } from './reconcile/clients/index.ts';
import { createReconcileService } from './reconcile/reconcile.service.ts';
import { createReconciler } from './reconcile/reconciler.ts';
import { createRefundFeature } from './refunds/refund.feature.ts';
import { createSandboxGateway } from './sandbox/sandbox-gateway.ts';
import { createSandboxRefunds } from './sandbox/sandbox-refunds.ts';
import type { Logger } from './shared/logger.ts';
import type { Clock } from './shared/time.ts';

export interface GatewayCallsDeps {
  config: AppConfig;
  db: Database;
  readDb: Database;
  /** The loops' own pool (main.ts gives them the delivery loop's); `db` when absent. */
  loopDb?: Database;
  clock: Clock;
  logger: Logger;
  callbacks: CallbackService;
  orders: OrderService;
  metrics: Pick<AppMetrics, 'recordReconcile' | 'recordRefundCall'>;
  onEventQueued?: () => void;
}

/**
 * Everything that calls the gateways' APIs, wired over one set of clients: the reconciler (queries, closes at
 * expiry), refunds and their loop, and the sandbox gateway's books, which answer both in process.
 */
export function createGatewayCalls(deps: GatewayCallsDeps) {
  const { config, db, clock, logger, callbacks, metrics } = deps;
  const secret = config.secrets.GATEWAY_SECRET;
  const sandboxBooks = config.sandboxEnabled ? createSandboxGateway(db, secret, clock) : null;
  const sandboxGateway = createGenericGateway('sandbox', secret);
  // The sandbox refunds too: answered from its books, then settled by its own signed refund notification.
  const sandboxRefunds = sandboxBooks ? createSandboxRefunds({ books: sandboxBooks, callbacks, gateway: sandboxGateway, secret, clock, logger }) : null;
  const clients = createGatewayClients(config, clock, sandboxBooks ? (form) => sandboxBooks.answerQuery(form) : null);
  const reconcile = createReconcileService({ db, clock, logger, clients, callbacks, orders: deps.orders, recordReconcile: metrics.recordReconcile });
  const reconciler = createReconciler({ db: deps.loopDb ?? db, service: reconcile, clock, logger, options: config.reconcile });
  const refunds = createRefundFeature({
    config,
    db,
    readDb: deps.readDb,
    loopDb: deps.loopDb,
    clock,
    logger,
    clients: createRefundClients(config, clock, clients, sandboxRefunds),
    onEventQueued: deps.onEventQueued,
    recordRefundCall: metrics.recordRefundCall,
  });
  return {
    sandboxBooks,
    sandboxGateway,
    reconcile,
    reconciler,
    refunds,
    /** Ends the loops' work and the sandbox's notifications in flight. */
    async stop(): Promise<void> {
      await Promise.all([reconciler.stop(), refunds.checker.stop(), sandboxRefunds?.whenIdle()]);
    },
  };
}
