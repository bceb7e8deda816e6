import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import request from 'supertest';
import { createApp } from '../src/app.ts';
import { openDatabase, type Database } from '../src/db/database.ts';
import { migrateToLatest } from '../src/db/migrator.ts';
import { createLogger } from '../src/shared/logger.ts';
import { loadConfig, type AppConfig } from '../src/config.ts';
import { MYSQL_URL } from './helpers/engines.ts';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';
import { TEST_API_KEY, TEST_ENV, TEST_GATEWAY_SECRET } from './helpers/context.ts';
import { signed } from './helpers/gateway-signer.ts';
import { startTcpProxy, type TcpProxy } from './helpers/tcp-proxy.ts';

if (!MYSQL_URL) console.warn('\n!! MYSQL_URL is not set: the silent-partition test (MariaDB only) did NOT run.\n');

/** A silent partition (packets dropped, no reset): queries time out and answer 503 instead of hanging. */
describe.skipIf(!MYSQL_URL)('silent network partition to MariaDB', () => {
  let database: TestDatabase;
  let proxy: TcpProxy;
  let db: Database;
  let direct: Database;
  let app: ReturnType<typeof createApp>;
  beforeAll(async () => {
    database = await createTestDatabase('mysql');
    direct = openDatabase(database.url, { poolSize: 2 });
    await migrateToLatest(direct);
    const target = new URL(MYSQL_URL!);
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 3306) });
    const url = proxy.urlThrough(database.url);
    db = openDatabase(url, { poolSize: 4, queryTimeoutMs: 1500 });
    const config = loadConfig({ ...TEST_ENV, DATABASE_URL: url }) as unknown as AppConfig;
    app = createApp({ config, db, logger: createLogger('silent') });
  });
  afterAll(async () => {
    await db.close().catch(() => undefined);
    await direct.close();
    await proxy.close();
    await database.drop();
  });

  it('answers 503 within the query timeout while silent, and recovers when the link heals', async () => {
    const order = await request(app).post('/api/orders').set('X-API-Key', TEST_API_KEY).send({ order_no: 'SILENT1', amount: '1.00' });
    expect(order.status).toBe(201); // the pool now holds open connections that will go silent
    proxy.blackhole();
    const started = Date.now();
    const body = signed({ order_no: 'SILENT1', transaction_id: 'T1', amount: '1.00', status: 'success' }, TEST_GATEWAY_SECRET);
    const answers = await Promise.all([...Array.from({ length: 6 }, () => request(app).post('/notify').type('form').send(body)), request(app).get('/readyz')]);
    const elapsed = Date.now() - started;
    expect(answers.map((a) => a.status)).toEqual(Array(7).fill(503));
    expect(elapsed).toBeLessThan(12_000);
    expect((await request(app).get('/healthz')).status).toBe(200);
    const row = await direct.kysely.selectFrom('orders').select('status').where('order_no', '=', 'SILENT1').executeTakeFirstOrThrow();
    expect(row.status).toBe('pending');

    proxy.restore();
    const paid = await request(app).post('/notify').type('form').send(body);
    expect(paid.status).toBe(200);
    expect(paid.body.data.status).toBe('paid');
    expect((await request(app).get('/readyz')).status).toBe(200);
  });
});
