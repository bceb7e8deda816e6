import type { Database } from '../db/database.ts';
import { isStatementRefusal, withDbRetry } from '../db/db-errors.ts';
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

interface Queued {
  completion: Completion;
  resolve: (kept: boolean) => void;
  reject: (err: unknown) => void;
}

/**
 * Groups the bookkeeping of finished deliveries: completions queue while a flush is in flight, and the next
 * flush (one transaction, one round trip on MySQL) starts as soon as it ends. No timer: a lone completion is
 * written in the next event-loop turn. `complete` resolves once its transaction committed, with whether the
 * lease was still held; it rejects when the flush failed even after deadlock retries (nothing was written).
 * With `loop`, a completion's slot is given back when it settles, and a flush may claim the slots it frees
 * (and any free one) in its own transaction: a steady drain costs one transaction per cycle, not two.
 */
export function createCompletionBatcher(db: Database, owner: string, clock: Clock, loop?: FlushLoop) {
  let queue: Queued[] = [];
  let flushing = false;
  let scheduled = false;
  let flushes = 0;

  function schedule(): void {
    if (flushing || scheduled || queue.length === 0) return;
    scheduled = true;
    // setImmediate, not a microtask: responses read in the same I/O phase join the same flush.
    setImmediate(() => {
      scheduled = false;
      void flush();
    });
  }

  function take(): Queued[] {
    // Two completions of one event (a lease reclaimed by this same process) never share a flush.
    const ids = new Set<number>();
    const batch: Queued[] = [];
    const rest: Queued[] = [];
    for (const item of queue) {
      const id = item.completion.attempt.notificationId;
      if (batch.length < MAX_PER_FLUSH && !ids.has(id)) {
        ids.add(id);
        batch.push(item);
      } else {
        rest.push(item);
      }
    }
    queue = rest;
    return batch;
  }

  /** Writes `batch` in one transaction (claiming with it when `mayClaim`); resolves or rejects each of its completions. */
  async function write(batch: Queued[], mayClaim: boolean): Promise<void> {
    const claiming = mayClaim && loop !== undefined && loop.claiming();
    const extra = claiming ? loop.slots.takeFree() : 0;
    const claim = claiming ? { limit: batch.length + extra, leaseMs: loop.leaseMs } : undefined;
    try {
      const { kept, claimed } = await withDbRetry(() => completeAttempts(db, owner, batch.map((q) => q.completion), clock(), claim), { attempts: 5 });
      flushes += 1;
      // The batch's slots pass to the events claimed with it; the rest are free again.
      loop?.slots.release(batch.length + extra - claimed.length);
      batch.forEach((q, i) => q.resolve(kept[i] ?? false));
      if (claim) loop?.claimed(claimed, claim.limit);
    } catch (err) {
      loop?.slots.release(extra);
      // The server refused a statement (not an outage): one bad completion must not cost the others theirs.
      if (batch.length > 1 && isStatementRefusal(err)) {
        for (const q of batch) await write([q], false);
        return;
      }
      loop?.slots.release(batch.length);
      for (const q of batch) q.reject(err);
    }
  }

  async function flush(): Promise<void> {
    if (flushing || queue.length === 0) return;
    flushing = true;
    try {
      await write(take(), true);
    } finally {
      flushing = false;
      schedule();
    }
  }

  return {
    complete(completion: Completion): Promise<boolean> {
      return new Promise<boolean>((resolve, reject) => {
        queue.push({ completion, resolve, reject });
        schedule();
      });
    },
    pending: () => queue.length,
    /** Transactions committed so far (each carries one or more completions). */
    flushes: () => flushes,
  };
}

export type CompletionBatcher = ReturnType<typeof createCompletionBatcher>;
