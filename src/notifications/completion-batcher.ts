import type { Database } from '../db/database.ts';
import { isStatementRefusal, withDbRetry } from '../db/db-errors.ts';
import { createFlushBatcher } from '../db/fast-path/flush-batcher.ts';
import type { Clock } from '../shared/time.ts';
import { completeAttempts, MAX_PER_FLUSH, type Completion } from './completion.repository.ts';
import type { DeliverySlots } from './delivery-slots.ts';
import type { ClaimedEvent } from './delivery.repository.ts';

/** How flushes take part in the delivery loop: they give back their completions' slots and may refill them. */
export interface FlushLoop {
  slots: DeliverySlots;
  leaseMs: number;
  /** Whether a flush should also claim due events (the loop runs and a backlog is likely). */
  claiming(): boolean;
  /** Events a flush claimed (`asked` were wanted), committed with it; each already holds a slot. */
  claimed(events: ClaimedEvent[], asked: number): void;
}

/**
 * Groups the bookkeeping of finished deliveries (flush batching, fast-path/flush-batcher.ts): one transaction,
 * one round trip on MySQL, per flush. `complete` resolves once its transaction committed, with whether the
 * lease was still held; it rejects when the flush failed even after deadlock retries (nothing was written).
 * With `loop`, a completion's slot is given back when it settles, and a flush may claim the slots it frees
 * (and any free one) in its own transaction: a steady drain costs one transaction per cycle, not two.
 */
export function createCompletionBatcher(db: Database, owner: string, clock: Clock, loop?: FlushLoop) {
  const batcher = createFlushBatcher<Completion, boolean>({
    maxBatch: MAX_PER_FLUSH,
    // Two completions of one event (a lease reclaimed by this same process) never share a flush.
    key: (completion) => completion.attempt.notificationId,
    async write(completions, first) {
      const claiming = first && loop !== undefined && loop.claiming();
      const extra = claiming ? loop.slots.takeFree() : 0;
      const claim = claiming ? { limit: completions.length + extra, leaseMs: loop.leaseMs } : undefined;
      let written;
      try {
        written = await withDbRetry(() => completeAttempts(db, owner, completions, clock(), claim), { attempts: 5 });
      } catch (err) {
        loop?.slots.release(extra);
        throw err;
      }
      // The batch's slots pass to the events claimed with it; the rest are free again.
      loop?.slots.release(completions.length + extra - written.claimed.length);
      if (claim) loop?.claimed(written.claimed, claim.limit);
      return completions.map((_, i) => written.kept[i] ?? false);
    },
    // The server refused a statement (not an outage): one bad completion must not cost the others theirs.
    split: isStatementRefusal,
    failed: (completions) => loop?.slots.release(completions.length),
  });

  return {
    complete: batcher.submit,
    pending: batcher.pending,
    /** Transactions committed so far (each carries one or more completions). */
    flushes: batcher.flushes,
  };
}

export type CompletionBatcher = ReturnType<typeof createCompletionBatcher>;
