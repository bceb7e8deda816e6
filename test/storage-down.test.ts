import { describe, expect, it } from 'vitest';
import request from 'supertest';
import { createApp } from '../src/app.ts';
import { loadConfig, type AppConfig } from '../src/config.ts';
import { openDatabase } from '../src/db/database.ts';
import { createLogger } from '../src/shared/logger.ts';
import { ENGINES } from './helpers/engines.ts';
import { createTestContext, TEST_API_KEY, TEST_ENV } from './helpers/context.ts';

describe.each(ENGINES)('storage unavailable on %s', (engine) => {
  it('answers 503 unavailable with Retry-After once the database handle is gone, never 500', async () => {
    const ctx = await createTestContext(engine);
    await ctx.db.close();
    const create = await ctx.api('post', '/api/orders').send({ order_no: 'X1', amount: '1.00' });
    expect(create.status).toBe(503);
    expect(create.body).toMatchObject({ success: false, code: 'unavailable' });
    expect(create.headers['retry-after']).toBe('5');
    const read = await ctx.api('get', '/api/orders/X1');
    expect(read.status).toBe(503);
    expect((await request(ctx.app).get('/readyz')).status).toBe(503);
    await ctx.database.drop();
  });
});

describe('MySQL server not answering', () => {
  it('answers 503 unavailable when the connection is refused', async () => {
    const env = { ...TEST_ENV, DATABASE_URL: 'mysql://root@127.0.0.1:1/nowhere' };
    const config = loadConfig(env) as unknown as AppConfig;
    const db = openDatabase(env.DATABASE_URL, { poolSize: 1 });
    const app = createApp({ config, db, logger: createLogger('silent') });
    const res = await request(app).post('/api/orders').set('X-API-Key', TEST_API_KEY).send({ amount: '1.00' });
    expect(res.status).toBe(503);
    expect(res.body.code).toBe('unavailable');
    expect((await request(app).get('/readyz')).status).toBe(503);
    await db.close();
  });
});
