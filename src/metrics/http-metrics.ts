import express, { type Request, type RequestHandler } from 'express';
import type { AppMetrics } from './metrics.registry.ts';

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const ROUTING = Symbol('routing of this request');
type Route = { path?: unknown };
/** `current` is what `req.route` reads; `matched` and `baseUrl` are the last route assigned and where it was mounted. */
type Routing = { current?: Route; matched?: Route; baseUrl: string };
type Tracked = Request & { [ROUTING]?: Routing };

/** A route's path as a label: aliases registered together (`['/notify', '/notify.php']`) count under the first. */
function routePattern(baseUrl: string, path: unknown): string {
  const own = Array.isArray(path) ? path[0] : path;
  const text = `${baseUrl}${typeof own === 'string' ? own : '(pattern)'}`;
  return text.length > 1 && text.endsWith('/') ? text.slice(0, -1) : text;
}

/**
 * Remembers the route that handles the request, and the base URL it was mounted under, as the router assigns
 * `req.route`. Reading `req.route` after the response is not enough: when a handler fails, the router has
 * already restored `req.baseUrl`, and `/:order_no` would lose its `/api/orders` prefix. One accessor on
 * Express's request prototype, instead of a property defined on every request.
 */
Object.defineProperty(express.request, 'route', {
  configurable: true,
  enumerable: false,
  get(this: Tracked) {
    return this[ROUTING]?.current;
  },
  set(this: Tracked, value: Route | undefined) {
    const routing = (this[ROUTING] ??= { current: undefined, matched: undefined, baseUrl: '' });
    routing.current = value;
    if (!value) return;
    routing.matched = value;
    routing.baseUrl = this.baseUrl;
  },
});

/**
 * Observes `http_request_duration_seconds` for every response. The `route` label is the matched route
 * pattern (`/api/orders/:order_no`), a static mount (`/assets/*`), or `unmatched`: never the raw URL,
 * so order numbers and probes cannot blow up the number of series.
 */
export function httpMetrics(metrics: AppMetrics): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    // 'close' follows 'finish' on every response and also ends an aborted one: one listener sees both.
    res.once('close', () => {
      const status = res.statusCode;
      const routing = (req as Tracked)[ROUTING];
      // A static middleware that served a file leaves its mount in req.baseUrl; a bare 404 is unmatched.
      const route = routing?.matched ? routePattern(routing.baseUrl, routing.matched.path) : status !== 404 && req.baseUrl ? `${req.baseUrl}/*` : 'unmatched';
      const method = METHODS.has(req.method) ? req.method : 'OTHER';
      metrics.observeHttp({ method, route, status_code: String(status) }, (performance.now() - started) / 1000);
    });
    next();
  };
}
