import { createHash, timingSafeEqual } from 'node:crypto';
import { Router, type RequestHandler } from 'express';
import { AppError } from '../shared/errors.ts';
import type { AppMetrics } from './metrics.registry.ts';

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/** `Authorization: Bearer <METRICS_TOKEN>`, compared in constant time (digests, so lengths leak nothing). */
export function requireMetricsToken(token: string | null): RequestHandler {
  const expected = token === null ? null : digest(token);
  return (req, res, next) => {
    if (!expected) return next();
    const presented = /^Bearer\s+(\S+)\s*$/i.exec(req.get('authorization') ?? '')?.[1];
    if (presented === undefined || !timingSafeEqual(digest(presented), expected)) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="metrics"');
      return next(
        new AppError('unauthorized', presented === undefined ? 'Missing metrics token: send Authorization: Bearer <METRICS_TOKEN>' : 'Invalid metrics token'),
      );
    }
    next();
  };
}

/** `GET /metrics`: Prometheus text format, behind METRICS_TOKEN when it is set. */
export function metricsRoutes(metrics: AppMetrics, token: string | null): Router {
  const router = Router();
  router.get('/metrics', requireMetricsToken(token), async (_req, res) => {
    const body = await metrics.render();
    res.setHeader('Cache-Control', 'no-store');
    res.type(metrics.contentType).send(body);
  });
  return router;
}
