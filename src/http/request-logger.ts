import { randomUUID } from 'node:crypto';
import express, { type Request, type RequestHandler, type Response } from 'express';
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
const BASE = Symbol('request logger');
const CHILD = Symbol('request child logger');
type Logged = Request & { [BASE]?: Logger; [CHILD]?: Logger };

/** Only what operators need; headers with credentials are never logged, signatures in the URL are masked. */
function describe(req: Request) {
  return { id: req.id, method: req.method, url: redactUrl(req.originalUrl), remoteAddress: req.socket.remoteAddress, userAgent: req.headers['user-agent'] };
}

// `req.log` is one accessor on Express's request prototype instead of a property defined on every request.
Object.defineProperty(express.request, 'log', {
  configurable: true,
  enumerable: false,
  get(this: Logged): Logger | undefined {
    const base = this[BASE];
    return base ? (this[CHILD] ??= base.child({ req: describe(this) })) : this[CHILD];
  },
  set(this: Logged, value: Logger) {
    this[CHILD] = value;
  },
});

/**
 * One JSON line per request (`request completed`, or `request errored` at error level for 5xx), with an
 * `X-Request-Id` honoured when sane and always returned. Deliberately lean: no per-request child logger
 * unless something logs through `req.log`, one listener, the line built once when the response is over.
 */
export function requestLogger(logger: Logger): RequestHandler {
  // A line without an error holds only the fields built below, none of them a redact path (the URL is masked
  // by redactUrl, no headers): it skips pino's wildcard redaction (~10 µs a line). Lines with an error keep it.
  // Its own level is the lowest: whether a line is written is decided by `logger`'s level.
  const plain = logger.child({}, { level: 'trace', redact: [] });

  const logLine = (req: Request, res: Response, started: number) => {
    const status = res.statusCode;
    const err = res.err;
    const finished = res.writableFinished;
    const level = err || status >= 500 ? 'error' : status >= 400 || !finished ? 'warn' : 'info';
    if (!logger.isLevelEnabled(level)) return;
    const line = {
      req: describe(req),
      // req.ip honours TRUST_PROXY: behind a proxy this is the client, not the proxy.
      clientIp: req.ip,
      res: { statusCode: status },
      responseTime: Math.round((performance.now() - started) * 10) / 10,
      ...(err ? { err } : {}),
    };
    const message = err || status >= 500 ? 'request errored' : finished ? 'request completed' : 'request aborted';
    (err ? logger : plain)[level](line, message);
  };

  return (req, res, next) => {
    const started = performance.now();
    const incoming = req.headers['x-request-id'];
    const id = typeof incoming === 'string' && VALID_REQUEST_ID.test(incoming) ? incoming : randomUUID();
    res.setHeader('X-Request-Id', id);
    req.id = id;
    (req as Logged)[BASE] = logger;
    // 'close' follows 'finish' on every response and also ends an aborted one: one listener sees both.
    res.once('close', () => logLine(req, res, started));
    next();
  };
}
