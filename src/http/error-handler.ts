import type { ErrorRequestHandler, Request, RequestHandler } from 'express';
import { AppError, ERROR_STATUS, type ErrorCode } from '../shared/errors.ts';
import { isStorageUnavailable } from '../db/db-errors.ts';
import { pageLocals } from '../pages/i18n.ts';
import { sendError } from './envelope.ts';

/** body-parser / http-errors `type`s → our stable codes. */
const BODY_ERRORS: Record<string, { code: ErrorCode; message: string }> = {
  'entity.parse.failed': { code: 'validation_failed', message: 'The request body is not valid JSON' },
  'entity.too.large': { code: 'payload_too_large', message: 'The request body is larger than 64 KiB' },
  'parameters.too.many': { code: 'payload_too_large', message: 'The request has too many parameters' },
  'charset.unsupported': { code: 'unsupported_media_type', message: 'Unsupported charset; send UTF-8' },
  'encoding.unsupported': { code: 'unsupported_media_type', message: 'Unsupported content encoding' },
  'request.aborted': { code: 'validation_failed', message: 'The request was aborted' },
  'request.size.invalid': { code: 'validation_failed', message: 'The request body length does not match Content-Length' },
};

/** Paths whose clients are programs: they always get the JSON envelope, never an HTML page. */
const JSON_PATHS = /^\/(api|query_order|notify|healthz|readyz|metrics)(\/|\.php|$)/;

function wantsHtml(req: Request): boolean {
  return !JSON_PATHS.test(req.path) && req.accepts(['json', 'html']) === 'html';
}

function toAppError(err: unknown): { error: AppError; unexpected: boolean } {
  if (err instanceof AppError) return { error: err, unexpected: false };
  const type = (err as { type?: string } | null)?.type;
  const known = type ? BODY_ERRORS[type] : undefined;
  if (known) return { error: new AppError(known.code, known.message), unexpected: false };
  // A URL whose percent-escapes do not decode (the router throws URIError with status 400).
  if (err instanceof URIError && (err as { status?: number }).status === 400) {
    return { error: new AppError('validation_failed', 'The URL is not valid percent-encoding'), unexpected: false };
  }
  // Other client errors raised by body parsing (e.g. a body that does not decompress) are 4xx, never 500.
  const e = err as { status?: unknown; expose?: unknown; message?: unknown } | null;
  if (e && e.expose === true && typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
    const code: ErrorCode = e.status === 413 ? 'payload_too_large' : e.status === 415 ? 'unsupported_media_type' : 'validation_failed';
    return { error: new AppError(code, `The request body could not be read: ${String(e.message)}`), unexpected: false };
  }
  if (isStorageUnavailable(err)) {
    return {
      error: new AppError('unavailable', 'The service is temporarily unavailable; the request was not acknowledged and is safe to retry.'),
      unexpected: true,
    };
  }
  return { error: new AppError('internal_error', 'An unexpected error occurred'), unexpected: true };
}

export const notFoundHandler: RequestHandler = (req, _res, next) => {
  next(new AppError('not_found', `No route for ${req.method} ${req.path}`));
};

/** The one place errors become responses: the A3 envelope for programs, an HTML page for browsers. */
export const errorHandler: ErrorRequestHandler = (err, req, res, _next) => {
  const { error, unexpected } = toAppError(err);
  if (unexpected) req.log?.error({ err }, 'request failed');
  res.err = unexpected ? (err as Error) : undefined;
  if (res.headersSent) return;
  const status = ERROR_STATUS[error.code];
  if (status === 503) res.setHeader('Retry-After', '5');
  if (wantsHtml(req)) {
    res.status(status).render('error', { ...pageLocals(req, res), status, code: error.code, message: error.message });
    return;
  }
  sendError(res, status, error.code, error.message, error.errors);
};
