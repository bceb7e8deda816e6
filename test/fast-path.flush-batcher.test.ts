import { describe, expect, it } from 'vitest';
import { createFlushBatcher, type FlushBatcherOptions } from '../src/db/fast-path/flush-batcher.ts';

interface Item {
  key: string;
  value: number;
}

class Refused extends Error {}

/** A batcher over an in-memory "transaction" that records every flush it was asked to write. */
function setUp(overrides: Partial<FlushBatcherOptions<Item, number>> = {}) {
  const flushes: Array<{ keys: string[]; first: boolean }> = [];
  let running = 0;
  let overlapped = false;
  const failed: string[][] = [];
  const batcher = createFlushBatcher<Item, number>({
    maxBatch: 3,
    key: (item) => item.key,
    async write(items, first) {
      flushes.push({ keys: items.map((i) => i.key), first });
      running++;
      overlapped ||= running > 1;
      await new Promise((resolve) => setTimeout(resolve, 5));
      running--;
      if (items.some((i) => i.value < 0)) throw new Refused('refused');
      return items.map((i) => i.value * 10);
    },
    split: (err) => err instanceof Refused,
    failed: (items) => failed.push(items.map((i) => i.key)),
    ...overrides,
  });
  return { batcher, flushes, failed, overlapped: () => overlapped };
}

describe('flush batcher', () => {
  it('writes one flush at a time, up to maxBatch items, never two items with one key in a flush', async () => {
    const { batcher, flushes, overlapped } = setUp();
    const items = ['a', 'b', 'a', 'c', 'd', 'e'].map((key, i) => ({ key, value: i }));
    expect(await Promise.all(items.map((i) => batcher.submit(i)))).toEqual([0, 10, 20, 30, 40, 50]);
    expect(flushes.map((f) => f.keys)).toEqual([
      ['a', 'b', 'c'],
      ['a', 'd', 'e'],
    ]);
    expect(overlapped()).toBe(false);
    expect(batcher.flushes()).toBe(2);
    expect(batcher.pending()).toBe(0);
  });

  it('a refused batch is written again item by item: the bad one fails, the others land', async () => {
    const { batcher, flushes, failed } = setUp();
    const results = await Promise.allSettled(
      [
        { key: 'a', value: 1 },
        { key: 'b', value: -1 },
        { key: 'c', value: 3 },
      ].map((i) => batcher.submit(i)),
    );
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : 'refused'))).toEqual([10, 'refused', 30]);
    expect(flushes).toEqual([
      { keys: ['a', 'b', 'c'], first: true },
      { keys: ['a'], first: false },
      { keys: ['b'], first: false },
      { keys: ['c'], first: false },
    ]);
    expect(failed).toEqual([['b']]);
  });

  it('an error that is not a refusal fails the whole batch at once, and every caller settles even when the hook throws', async () => {
    const { batcher, flushes } = setUp({
      split: () => false,
      failed: () => {
        throw new Error('hook');
      },
    });
    const results = await Promise.allSettled(
      [
        { key: 'a', value: 1 },
        { key: 'b', value: -1 },
      ].map((i) => batcher.submit(i)),
    );
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(flushes).toHaveLength(1);
  });
});
