import { recordAudit } from '../audit/audit.repository.ts';
import type { Database } from '../db/database.ts';
import { findOrderByNo } from '../orders/order.repository.ts';
import type { CheckResult, ReconcileService } from '../reconcile/reconcile.service.ts';
import { AppError, NotFoundError } from '../shared/errors.ts';
import type { Clock } from '../shared/time.ts';
import type { FlashKey } from './admin-view.ts';
import type { ConsoleActor } from './orders.service.ts';

/** The flash of each thing a look at the gateway can come to (a manual look never expires an order). */
const FLASH_OF: Record<CheckResult['outcome'], FlashKey> = {
  recovered: 'sync_recovered',
  already_paid: 'sync_already_paid',
  unchanged: 'sync_unchanged',
  closed: 'sync_closed',
  expired: 'sync_closed',
  mismatch: 'sync_mismatch',
  error: 'sync_gateway_error',
  not_queryable: 'sync_not_queryable',
};

/** "Ask the gateway now" on the order page: the reconcile service's sync, audit-logged as `order.sync`. */
export function createOrderSync(deps: { db: Database; clock: Clock; reconcile: Pick<ReconcileService, 'syncOrder'> }) {
  /**
   * Asks the order's gateway and applies its answer. A gateway that cannot be asked (not configured, or
   * failing) becomes an error flash, not an error page. The audit row follows the look: the look commits in
   * the callbacks' own transaction, which takes no audit hook.
   */
  async function sync(orderNo: string, actor: ConsoleActor): Promise<FlashKey> {
    const before = await findOrderByNo(deps.db.kysely, orderNo);
    if (!before) throw new NotFoundError(`Order ${orderNo} not found`);
    const audit = (newValue: unknown) =>
      recordAudit(deps.db.kysely, {
        actor: actor.operator,
        action: 'order.sync',
        target: `order:${orderNo}`,
        oldValue: { status: before.status },
        newValue,
        remoteIp: actor.remoteIp,
        now: deps.clock(),
      });
    try {
      const after = await deps.reconcile.syncOrder(orderNo);
      await audit({ outcome: after.reconcile.outcome, gateway_state: after.reconcile.gateway_state, status: after.status });
      return FLASH_OF[after.reconcile.outcome];
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      // Refused before anything was asked: like a refused close, nothing to record.
      if (err.code === 'not_queryable') return 'sync_not_queryable';
      if (err.code !== 'gateway_error') throw err;
      // The gateway was called (its failure is on the timeline): the operator's attempt is recorded too.
      await audit({ outcome: 'error', message: err.message, status: before.status });
      return 'sync_gateway_error';
    }
  }

  return { sync };
}

export type OrderSync = ReturnType<typeof createOrderSync>;
