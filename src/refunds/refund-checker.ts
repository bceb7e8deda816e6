import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Database } from '../db/database.ts';
import { findOrderByNo } from '../orders/order.repository.ts';
import type { RefundRow } from '../orders/refund.repository.ts';
import { createLeasedLoop } from '../shared/leased-loop.ts';
import type { Logger } from '../shared/logger.ts';
import type { Clock } from '../shared/time.ts';
import { claimDueRefunds, finishRefundCheck, releaseRefundLeases } from './refund-checks.repository.ts';
import type { RefundExecution } from './refund-execution.ts';

export interface RefundCheckerOptions {
  concurrency: number;
  pollIntervalMs: number;
  timeoutMs: number;
  /** RECONCILE_SCHEDULE: the delays between looks; the last one repeats until the refund settles. */
  scheduleMs: readonly number[];
}

/**
 * The reconciler's loop for pending refunds: leases the due ones (several instances never lease the same one),
 * asks their gateways — sending again what a gateway never received — and schedules the next look until each
 * settles. A pending refund is never given up: after the schedule, it is asked at its last delay for ever.
 */
export function createRefundChecker(deps: { db: Database; execution: RefundExecution; clock: Clock; logger: Logger; options: RefundCheckerOptions }) {
  const { db, execution, clock, logger, options } = deps;
  const owner = `${hostname().slice(0, 32)}:${process.pid}:r${randomBytes(3).toString('hex')}`;
  // A look makes at most two calls (query, then the refund again).
  const leaseMs = options.timeoutMs * 2 + 5_000;

  async function look(refund: RefundRow, signal: AbortSignal): Promise<void> {
    try {
      const order = await findOrderByNo(db.kysely, refund.order_no);
      if (order) await execution.check(refund, order, 'schedule', signal);
    } catch (err) {
      logger.warn({ err, refundNo: refund.refund_no }, 'refund check failed (storage?); asked again at the next step');
    }
    const step = refund.check_step;
    const at = new Date(clock().getTime() + options.scheduleMs[Math.min(step, options.scheduleMs.length - 1)]!);
    await finishRefundCheck(db.kysely, refund.refund_no, owner, { at, step: step + 1 }).catch((err: unknown) =>
      logger.warn({ err, refundNo: refund.refund_no }, 'refund check: the next look could not be recorded; the lease runs out and it is asked again'),
    );
  }

  return createLeasedLoop<RefundRow>({
    concurrency: options.concurrency,
    pollIntervalMs: options.pollIntervalMs,
    leaseMs,
    claim: (limit) => claimDueRefunds(db, owner, limit, leaseMs, clock()),
    keyOf: (refund) => refund.refund_no,
    work: look,
    release: () => releaseRefundLeases(db.kysely, owner, clock()),
    onError: (err, during) => logger.warn({ err }, `refund check: ${during} failed; retrying at the next poll`),
  });
}

export type RefundChecker = ReturnType<typeof createRefundChecker>;
