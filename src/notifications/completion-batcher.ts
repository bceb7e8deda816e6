import { withDeadlockRetry } from '../callbacks/deadlock-retry.ts';
import type { Database } from '../db/database.ts';
import type { Clock } from '../shared/time.ts';
import { completeAttempts, type Completion } from './completion.repository.ts';

/** Bounds one flush's statement (and packet) size; what is left waits for the next flush. */
const MAX_PER_FLUSH = 256;

/** An error the database answered for a statement (constraint, data, deadlock), as opposed to a lost or silent connection. */
function isStatementError(err: unknown): boolean {
  const e = err as { sqlState?: unknown; fatal?: unknown; code?: unknown } | null;
  if (typeof e?.sqlState === 'string') return e.fatal !== true;
  return typeof e?.code === 'string' && e.code.startsWith('SQLITE_') && !e.code.startsWith('SQLITE_BUSY');
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
 */
export function createCompletionBatcher(db: Database, owner: string, clock: Clock) {
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

  /** Writes `batch` in one transaction; resolves or rejects each of its completions. */
  async function write(batch: Queued[]): Promise<void> {
    try {
      const kept = await withDeadlockRetry(() => completeAttempts(db, owner, batch.map((q) => q.completion), clock()), 5);
      flushes += 1;
      batch.forEach((q, i) => q.resolve(kept[i] ?? false));
    } catch (err) {
      // The server refused a statement (not an outage): one bad completion must not cost the others theirs.
      if (batch.length > 1 && isStatementError(err)) {
        for (const q of batch) await write([q]);
        return;
      }
      for (const q of batch) q.reject(err);
    }
  }

  async function flush(): Promise<void> {
    if (flushing || queue.length === 0) return;
    flushing = true;
    try {
      await write(take());
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
