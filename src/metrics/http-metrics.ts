import type { Request, RequestHandler } from 'express';
import type { AppMetrics } from './metrics.registry.ts';

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** A route's path as a label: aliases registered together (`['/notify', '/notify.php']`) count under the first. */
function routePattern(baseUrl: string, path: unknown): string {
  const own = Array.isArray(path) ? path[0] : path;
  const text = `${baseUrl}${typeof own === 'string' ? own : '(pattern)'}`;
  return text.length > 1 && text.endsWith('/') ? text.slice(0, -1) : text;
}

/**
 * Remembers the pattern of the route that handles the request, as the router assigns `req.route`.
 * Reading `req.route` after the response is not enough: when a handler fails, the router has already
 * restored `req.baseUrl`, and `/:order_no` would lose its `/api/orders` prefix.
 */
function trackRoute(req: Request): () => string | undefined {
  let route: unknown;
  let pattern: string | undefined;
  Object.defineProperty(req, 'route', {
    configurable: true,
    enumerable: true,
    get: () => route,
    set: (value: { path?: unknown } | undefined) => {
      route = value;
      pattern = value ? routePattern(req.baseUrl, value.path) : pattern;
    },
  });
  return () => pattern;
}

/**
 * Observes `http_request_duration_seconds` for every response. The `route` label is the matched route
 * pattern (`/api/orders/:order_no`), a static mount (`/assets/*`), or `unmatched`: never the raw URL,
 * so order numbers and probes cannot blow up the number of series.
 */
export function httpMetrics(metrics: AppMetrics): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    const matched = trackRoute(req);
    let observed = false;
    const done = () => {
      if (observed) return;
      observed = true;
      const status = res.statusCode;
      // A static middleware that served a file leaves its mount in req.baseUrl; a bare 404 is unmatched.
      const route = matched() ?? (status !== 404 && req.baseUrl ? `${req.baseUrl}/*` : 'unmatched');
      const method = METHODS.has(req.method) ? req.method : 'OTHER';
      metrics.observeHttp({ method, route, status_code: String(status) }, (performance.now() - started) / 1000);
    };
    res.once('finish', done);
    res.once('close', done);
    next();
  };
}
