import request from 'supertest';
import type { Express } from 'express';
import { createApp, stopApp, type AppDeps } from '../../src/app.ts';
import { loadConfig, type AppConfig } from '../../src/config.ts';
import { openDatabase, type Database, type Engine } from '../../src/db/database.ts';
import { migrateToLatest } from '../../src/db/migrator.ts';
import { createLogger } from '../../src/shared/logger.ts';
import { systemClock, type Clock } from '../../src/shared/time.ts';
import { bootstrapSecrets } from '../../src/system/secrets.service.ts';
import { createTestDatabase, type TestDatabase } from './database.ts';

export const TEST_API_KEY = 'test-api-key-0123456789abcdef';
export const TEST_GATEWAY_SECRET = 'test-gateway-secret-0123456789abcdef';

/** The environment every test app starts from; tests override single variables. */
export const TEST_ENV: Record<string, string> = {
  NODE_ENV: 'test',
  LOG_LEVEL: 'silent',
  API_KEYS: TEST_API_KEY,
  GATEWAY_SECRET: TEST_GATEWAY_SECRET,
  NOTIFY_SECRET: `whsec_${Buffer.alloc(32, 7).toString('base64')}`,
  ADMIN_PASSWORD: 'plum-orbit-cascade-console-7',
  SESSION_SECRET: 'test-session-secret-0123456789abcdef0123456789',
};

/** The database of each test app, so console helpers can add accounts knowing only the app. */
const DATABASES = new WeakMap<Express, Database>();
export function databaseOf(app: Express): Database {
  const db = DATABASES.get(app);
  if (!db) throw new Error('not an app of createTestContext');
  return db;
}

export interface TestContext {
  engine: Engine;
  app: Express;
  db: Database;
  config: AppConfig;
  database: TestDatabase;
  /** A supertest agent call carrying the test API key. */
  api(method: 'get' | 'post' | 'put' | 'delete', path: string): request.Test;
  close(): Promise<void>;
}

export interface TestContextOptions {
  env?: Record<string, string | undefined>;
  clock?: Clock;
  deps?: Partial<AppDeps>;
}

/** A fresh database (per test file) with migrations applied, and an app over it. */
export async function createTestContext(engine: Engine, options: TestContextOptions = {}): Promise<TestContext> {
  const database = await createTestDatabase(engine);
  const clock = options.clock ?? systemClock;
  const baseConfig = loadConfig({ ...TEST_ENV, DATABASE_URL: database.url, ...options.env });
  const db = openDatabase(database.url, { poolSize: baseConfig.database.poolSize });
  await migrateToLatest(db);
  const { config } = await bootstrapSecrets(baseConfig, db, clock);
  const app = createApp({ config, db, logger: createLogger('silent'), clock, ...options.deps });
  DATABASES.set(app, db);
  let current = app;
  return {
    engine,
    get app() {
      return current;
    },
    // A test may rebuild the app over the same database (with settings of its own): console helpers still find it.
    set app(next: Express) {
      DATABASES.set(next, db);
      current = next;
    },
    db,
    config,
    database,
    api: (method, path) => request(app)[method](path).set('X-API-Key', TEST_API_KEY),
    async close() {
      await stopApp(app);
      await db.close();
      await database.drop();
    },
  };
}
