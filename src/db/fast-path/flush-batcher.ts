/**
 * Flush batching: items queue while a flush is in flight, and the next flush (one transaction) takes them all
 * as soon as it ends. No timer: a lone item is written in the next event-loop turn. Unlike the group commit,
 * one flush runs at a time, so a steady stream of items costs one transaction per cycle.
 */
export interface FlushBatcherOptions<T, R> {
  /** The most items in one flush. */
  maxBatch: number;
  /** Items with equal keys never share a flush (each must see what the previous one wrote). */
  key(item: T): string | number;
  /** Writes `items` in one transaction and returns each one's result, in order; throws when nothing was written. `first`: a batch's first try (not an item re-run alone). */
  write(items: T[], first: boolean): Promise<R[]>;
  /** After a batch of several failed: true to write its items again one by one (the server refused one statement, nothing was written). */
  split(err: unknown): boolean;
  /** Told of items that failed for good, once their callers got `err`; a hook that throws changes nothing. */
  failed?(items: T[], err: unknown): void;
}

interface Queued<T, R> {
  item: T;
  resolve(result: R): void;
  reject(err: unknown): void;
}

export function createFlushBatcher<T, R>(options: FlushBatcherOptions<T, R>) {
  let queue: Queued<T, R>[] = [];
  let flushing = false;
  let scheduled = false;
  let flushes = 0;

  function schedule(): void {
    if (flushing || scheduled || queue.length === 0) return;
    scheduled = true;
    // setImmediate, not a microtask: items submitted in the same I/O phase join the same flush.
    setImmediate(() => {
      scheduled = false;
      void flush();
    });
  }

  function take(): Queued<T, R>[] {
    const keys = new Set<string | number>();
    const batch: Queued<T, R>[] = [];
    const rest: Queued<T, R>[] = [];
    for (const entry of queue) {
      const key = options.key(entry.item);
      if (batch.length < options.maxBatch && !keys.has(key)) {
        keys.add(key);
        batch.push(entry);
      } else {
        rest.push(entry);
      }
    }
    queue = rest;
    return batch;
  }

  /** Writes `batch` in one transaction; resolves or rejects each of its items. */
  async function write(batch: Queued<T, R>[], first: boolean): Promise<void> {
    let results: R[];
    try {
      results = await options.write(
        batch.map((q) => q.item),
        first,
      );
    } catch (err) {
      // One bad item must not cost the others theirs.
      if (batch.length > 1 && options.split(err)) {
        for (const q of batch) await write([q], false);
        return;
      }
      for (const q of batch) q.reject(err);
      try {
        options.failed?.(
          batch.map((q) => q.item),
          err,
        );
      } catch {
        // ignored on purpose: its callers have their answer, and the next flush must still run
      }
      return;
    }
    flushes += 1;
    batch.forEach((q, i) => q.resolve(results[i]!));
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
    /** Resolves with the item's result once its transaction committed; rejects when it could not be written. */
    submit(item: T): Promise<R> {
      return new Promise<R>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        schedule();
      });
    },
    pending: () => queue.length,
    /** Transactions committed so far (each carries one or more items). */
    flushes: () => flushes,
  };
}
