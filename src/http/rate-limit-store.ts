import { Redis } from 'ioredis';
import { RedisStore } from 'rate-limit-redis';
import type { Logger } from '../shared/logger.ts';

/**
 * Rate-limit counters in Redis, shared by every instance behind a load balancer: the API's budget
 * (`<prefix>rl:<client>`), the console's failed logins (`<prefix>rl-login:<client>`) and the rejected
 * callbacks per address (`<prefix>rl-reject:<address>`), one client for all.
 */
export function createRedisRateLimitStore(redis: { url: string; prefix: string }, logger: Logger) {
  const client = new Redis(redis.url, { maxRetriesPerRequest: 1, enableOfflineQueue: true, lazyConnect: false });
  client.on('error', (err) => logger.warn({ err: err.message }, 'redis error (rate limits fail open)'));
  const sendCommand = (command: string, ...args: string[]) => client.call(command, ...args) as never;
  // A store serves one limiter (its window), so each limit has its own, under its own key prefix.
  const store = new RedisStore({ prefix: `${redis.prefix}rl:`, sendCommand });
  const loginStore = new RedisStore({ prefix: `${redis.prefix}rl-login:`, sendCommand });
  const rejectStore = new RedisStore({ prefix: `${redis.prefix}rl-reject:`, sendCommand });
  return {
    store,
    loginStore,
    rejectStore,
    close: () =>
      client.quit().then(
        () => undefined,
        () => client.disconnect(),
      ),
  };
}
