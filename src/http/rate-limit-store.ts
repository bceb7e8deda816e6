import { Redis } from 'ioredis';
import { RedisStore } from 'rate-limit-redis';
import type { Logger } from '../shared/logger.ts';

/** Rate-limit counters in Redis, shared by every instance behind a load balancer. */
export function createRedisRateLimitStore(redis: { url: string; prefix: string }, logger: Logger) {
  const client = new Redis(redis.url, { maxRetriesPerRequest: 1, enableOfflineQueue: true, lazyConnect: false });
  client.on('error', (err) => logger.warn({ err: err.message }, 'redis error (rate limits fail open)'));
  const store = new RedisStore({
    prefix: `${redis.prefix}rl:`,
    sendCommand: (command: string, ...args: string[]) => client.call(command, ...args) as never,
  });
  return { store, close: () => client.quit().then(() => undefined, () => client.disconnect()) };
}
