import { randomUUID } from 'node:crypto';
import type { RequestHandler } from 'express';
import { redactUrl, type Logger } from '../shared/logger.ts';

declare module 'http' {
  interface IncomingMessage {
    /** The request id: a sane incoming `X-Request-Id`, else a fresh UUID. */
    id?: string;
    /** A logger whose lines carry this request (created on first use). */
    log?: Logger;
  }
  interface ServerResponse {
    /** An unexpected error behind this response, set by the error handler for the request log line. */
    err?: Error;
  }
}

const VALID_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * One JSON line per request (`request completed`, or `request errored` at error level for 5xx), with an
 * `X-Request-Id` honoured when sane and always returned. Deliberately lean: no per-request child logger
 * unless something logs through `req.log`, one listener pair, the line built once when the response ends.
 */
export function requestLogger(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const started = performance.now();
    const incoming = req.headers['x-request-id'];
    const id = typeof incoming === 'string' && VALID_REQUEST_ID.test(incoming) ? incoming : randomUUID();
    res.setHeader('X-Request-Id', id);
    req.id = id;
    // Only what operators need; headers with credentials are never logged, signatures in the URL are masked.
    const describe = () => ({
      id,
      method: req.method,
      url: redactUrl(req.originalUrl),
      remoteAddress: req.socket.remoteAddress,
      userAgent: req.headers['user-agent'],
    });
    let child: Logger | undefined;
    Object.defineProperty(req, 'log', {
      configurable: true,
      enumerable: false,
      get: () => (child ??= logger.child({ req: describe() })),
      set: (value: Logger) => {
        child = value;
      },
    });

    let logged = false;
    const done = () => {
      if (logged) return;
      logged = true;
      res.off('finish', done);
      res.off('close', done);
      const status = res.statusCode;
      const err = res.err;
      const finished = res.writableFinished;
      const level = err || status >= 500 ? 'error' : status >= 400 || !finished ? 'warn' : 'info';
      if (!logger.isLevelEnabled(level)) return;
      const line = {
        req: describe(),
        // req.ip honours TRUST_PROXY: behind a proxy this is the client, not the proxy.
        clientIp: req.ip,
        res: { statusCode: status },
        responseTime: Math.round((performance.now() - started) * 10) / 10,
        ...(err ? { err } : {}),
      };
      const message = err || status >= 500 ? 'request errored' : finished ? 'request completed' : 'request aborted';
      logger[level](line, message);
    };
    res.on('finish', done);
    res.on('close', done);
    next();
  };
}
