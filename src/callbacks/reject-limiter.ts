import { ipKeyGenerator, type Options, type Store } from 'express-rate-limit';

/** Counts rejected callbacks per source address; past the budget they are answered 429 and not stored. */
export interface RejectLimiter {
  /** Counts one rejected callback from `address`: true when the address is now over its budget (drop it). */
  exceeded(address: string): Promise<boolean>;
}

const WINDOW_MS = 60_000;
/** Addresses counted at once in memory; past that, new addresses share one counter until the minute ends. */
export const MAX_TRACKED_ADDRESSES = 10_000;
const OVERFLOW_KEY = '*';

export interface RejectLimiterOptions {
  perMinute: number;
  /** Counters shared by every instance (Redis); in this process's memory when absent or out of reach. */
  store?: Store;
  onStoreError?: (err: unknown) => void;
  now?: () => number;
  maxAddresses?: number;
}

/** Fixed one-minute windows in memory, bounded: the whole table starts afresh each minute. */
function memoryCounter(maxAddresses: number, now: () => number) {
  let windowEnds = 0;
  let counts = new Map<string, number>();
  return (key: string): number => {
    const t = now();
    if (t >= windowEnds) {
      counts = new Map();
      windowEnds = t + WINDOW_MS;
    }
    // A flood from ever new addresses (an IPv6 range) cannot grow the table; together they get one budget.
    const slot = counts.has(key) || counts.size < maxAddresses ? key : OVERFLOW_KEY;
    const hits = (counts.get(slot) ?? 0) + 1;
    counts.set(slot, hits);
    return hits;
  };
}

export function createRejectLimiter({
  perMinute,
  store,
  onStoreError,
  now = Date.now,
  maxAddresses = MAX_TRACKED_ADDRESSES,
}: RejectLimiterOptions): RejectLimiter {
  const local = memoryCounter(maxAddresses, now);
  let ready: Promise<unknown> | null = null;

  async function sharedHits(key: string): Promise<number> {
    ready ??= Promise.resolve(store!.init?.({ windowMs: WINDOW_MS } as Options));
    try {
      await ready;
      return (await store!.increment(key)).totalHits;
    } catch (err) {
      ready = null; // initialise again next time: Redis may be back
      throw err;
    }
  }

  return {
    async exceeded(address: string): Promise<boolean> {
      // IPv6 clients are counted by /56, as the API's limit does: one host has many addresses.
      const key = ipKeyGenerator(address);
      if (store) {
        try {
          return (await sharedHits(key)) > perMinute;
        } catch (err) {
          onStoreError?.(err); // Redis out of reach: this process counts on its own meanwhile
        }
      }
      return local(key) > perMinute;
    },
  };
}
