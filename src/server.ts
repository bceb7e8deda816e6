import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Express } from 'express';
import type { AppConfig } from './config.ts';

/** Plain HTTP, or native HTTPS when TLS_CERT_FILE and TLS_KEY_FILE are set. */
/**
 * Slow clients cannot hold sockets: headers within 20 s, the whole request within 30 s, checked every 2 s.
 * Keep-alive idles 65 s, longer than common proxies' idle timeout (avoids 502s when they reuse a socket).
 */
const TIMEOUTS = { headersTimeout: 20_000, requestTimeout: 30_000, connectionsCheckingInterval: 2_000, keepAliveTimeout: 65_000 };

export function createServer(app: Express, config: Pick<AppConfig, 'tls'>): Server {
  const server = config.tls
    ? createHttpsServer({ ...TIMEOUTS, cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) }, app)
    : createHttpServer(TIMEOUTS, app);
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

/** Stops accepting connections, lets in-flight requests finish, then closes idle keep-alive sockets. */
export function closeServer(server: Server, graceMs = 10_000): Promise<void> {
  return new Promise((resolve) => {
    const force = setTimeout(() => server.closeAllConnections(), graceMs);
    force.unref();
    server.close(() => {
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}
