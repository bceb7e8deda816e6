import type { AppConfig, GatewayName } from '../config.ts';
import type { Database } from '../db/database.ts';
import type { RefundClient } from '../reconcile/gateway-client.ts';
import type { Logger } from '../shared/logger.ts';
import type { Clock } from '../shared/time.ts';
import { createRefundChecker } from './refund-checker.ts';
import { createRefundExecution } from './refund-execution.ts';
import { createRefundService } from './refund.service.ts';

export interface RefundFeatureDeps {
  config: Pick<AppConfig, 'reconcile'>;
  db: Database;
  readDb: Database;
  /** The pending-refund loop's pool (the worker's); `db` when absent. */
  loopDb?: Database;
  clock: Clock;
  logger: Logger;
  clients: Partial<Record<GatewayName, RefundClient>>;
  onEventQueued?: () => void;
  recordRefundCall?: (gateway: string, action: string, outcome: string) => void;
}

/** The refund service (API and console) and the loop that settles pending refunds, over one set of gateway clients. */
export function createRefundFeature(deps: RefundFeatureDeps) {
  const { config, db, clock, logger } = deps;
  const execution = createRefundExecution({
    db,
    clock,
    logger,
    clients: deps.clients,
    onEventQueued: deps.onEventQueued,
    recordRefundCall: deps.recordRefundCall,
  });
  const service = createRefundService({
    db,
    readDb: deps.readDb,
    clock,
    execution,
    firstCheckAfterMs: config.reconcile.afterMs,
    timeoutMs: config.reconcile.timeoutMs,
  });
  const loopExecution = deps.loopDb ? createRefundExecution({ ...deps, db: deps.loopDb }) : execution;
  const checker = createRefundChecker({ db: deps.loopDb ?? db, execution: loopExecution, clock, logger, options: config.reconcile });
  return { service, checker };
}

export type RefundFeature = ReturnType<typeof createRefundFeature>;
