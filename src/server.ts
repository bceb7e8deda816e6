import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, IncomingMessage, ServerResponse, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Express } from 'express';
import type { AppConfig } from './config.ts';

/** Plain HTTP, or native HTTPS when TLS_CERT_FILE and TLS_KEY_FILE are set. */
/**
 * Slow clients cannot hold sockets: headers within 20 s, the whole request within 30 s, checked every 2 s.
 * Keep-alive idles 65 s, longer than common proxies' idle timeout (avoids 502s when they reuse a socket).
 */
const TIMEOUTS = { headersTimeout: 20_000, requestTimeout: 30_000, connectionsCheckingInterval: 2_000, keepAliveTimeout: 65_000 };

type Init = (this: object, ...args: unknown[]) => void;
/** Node's message constructors are plain functions (not `class`), so a subtype can run them on its own instance. */
const isPlainConstructor = (f: unknown) => typeof f === 'function' && !/^class\b/.test(Function.prototype.toString.call(f));

/**
 * Request and response types whose instances are born with the app's prototypes (`app.request`,
 * `app.response`), so Express's per-request Object.setPrototypeOf finds them already in place (a no-op).
 * Re-parenting each live request and response kept most of a request's objects alive through two minor
 * GCs (measured under /notify load: ~50 MB/s promoted, three full GCs a second); born right, nearly none
 * are. The constructors run on `this`: built through Reflect.construct instead, they were still promoted.
 * Empty when a future Node makes them classes: the server then builds standard ones, as before.
 */
function appMessageClasses(app: Express): { IncomingMessage?: typeof IncomingMessage; ServerResponse?: typeof ServerResponse } {
  if (!isPlainConstructor(IncomingMessage) || !isPlainConstructor(ServerResponse)) return {};
  function AppRequest(this: object, ...args: unknown[]): void {
    (IncomingMessage as unknown as Init).apply(this, args);
  }
  AppRequest.prototype = app.request;
  function AppResponse(this: object, ...args: unknown[]): void {
    (ServerResponse as unknown as Init).apply(this, args);
  }
  AppResponse.prototype = app.response;
  return { IncomingMessage: AppRequest as unknown as typeof IncomingMessage, ServerResponse: AppResponse as unknown as typeof ServerResponse };
}

export function createServer(app: Express, config: Pick<AppConfig, 'tls'>): Server {
  const options = { ...TIMEOUTS, ...appMessageClasses(app) };
  const server = config.tls
    ? createHttpsServer({ ...options, cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) }, app)
    : createHttpServer(options, app);
  server.keepAliveTimeout = TIMEOUTS.keepAliveTimeout;
  return server;
}

export function listen(server: Server, port: number, host: string): Promise<{ port: number; host: string }> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const address = server.address();
      resolve({ port: typeof address === 'object' && address ? address.port : port, host });
    });
  });
}

/**
 * Stops accepting connections, lets in-flight requests finish, then closes idle keep-alive sockets; after
 * `graceMs` the remaining connections are closed. Resolves true when no request had to be cut off.
 */
export function closeServer(server: Server, graceMs = 10_000): Promise<boolean> {
  return new Promise((resolve) => {
    let forced = false;
    const force = setTimeout(
      () => {
        forced = true;
        server.closeAllConnections();
      },
      Math.min(graceMs, 2 ** 31 - 1),
    );
    force.unref();
    server.close(() => {
      clearTimeout(force);
      resolve(!forced);
    });
    server.closeIdleConnections();
  });
}
