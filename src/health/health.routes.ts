import { Router } from 'express';
import { pingDatabase, type Database } from '../db/database.ts';
import { pendingMigrations } from '../db/migrator.ts';
import { sendData, sendError } from '../http/envelope.ts';

/** `/healthz` (the process runs) and `/readyz` (the database answers and its schema is current). */
export function healthRoutes(db: Database): Router {
  const router = Router();
  router.get('/healthz', (_req, res) => sendData(res, { status: 'ok' }));
  router.get('/readyz', async (_req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    try {
      await pingDatabase(db);
    } catch {
      res.setHeader('Retry-After', '5');
      return sendError(res, 503, 'unavailable', 'The database does not answer');
    }
    const pending = await pendingMigrations(db).catch(() => null);
    if (pending === null) return sendError(res, 503, 'unavailable', 'The migration state could not be read');
    if (pending.length > 0) return sendError(res, 503, 'unavailable', `Migrations pending: ${pending.join(', ')}`);
    sendData(res, { status: 'ready', database: db.engine, migrations: 'current' });
  });
  return router;
}
