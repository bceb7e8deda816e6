import express, { type Request, type RequestHandler } from 'express';

const BODY_LIMIT = '64kb';
const UTF8 = /^utf-?8$/i;

/** Keeps the exact body bytes: gateways sign raw bodies, and payment logs store requests verbatim. */
export const keepRawBody = (req: Request, _res: unknown, buf: Buffer) => {
  (req as Request & { rawBody?: Buffer }).rawBody = buf;
};

/**
 * JSON and forms are read as UTF-8 only (415 otherwise): the body parsers would decode UTF-16 JSON, whose text
 * is neither what a gateway signed nor what our number and exponent checks look at.
 */
const utf8Only: RequestHandler = (req, _res, next) => {
  const type = req.headers['content-type']?.toLowerCase();
  const parsed = type?.startsWith('application/x-www-form-urlencoded') || type?.startsWith('application/json') || /^application\/[^;]*\+json/.test(type ?? '');
  const charset = parsed ? /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(type!)?.[1] : undefined;
  if (charset !== undefined && !UTF8.test(charset)) {
    next(Object.assign(new Error(`unsupported charset "${charset.toUpperCase()}"`), { status: 415, expose: true, type: 'charset.unsupported' }));
    return;
  }
  next();
};

/** JSON bodies (UTF-8 only) for the API. */
export const jsonBody = (): RequestHandler[] => [utf8Only, parseJson()];
/** Form bodies (UTF-8 only) for the API and pages. */
export const formBody = (): RequestHandler[] => [utf8Only, parseForm()];

const parseJson = () => express.json({ limit: BODY_LIMIT, type: ['application/json', 'application/*+json'], verify: keepRawBody });
const parseForm = () => express.urlencoded({ extended: false, limit: BODY_LIMIT, parameterLimit: 256, verify: keepRawBody });

/**
 * Body readers for server-to-server notifications: JSON is parsed as usual, a form is only read (its raw
 * bytes are decoded once by callbackInput, exactly as sent), so the busiest request is not parsed twice.
 */
export function notifyBodyParsers(): RequestHandler[] {
  return [utf8Only, parseJson(), express.raw({ limit: BODY_LIMIT, type: 'application/x-www-form-urlencoded', verify: keepRawBody })];
}

/** Body readers for the browser's return (/callback): the result page also reads the parsed form. */
export function pageBodyParsers(): RequestHandler[] {
  return [utf8Only, parseJson(), parseForm()];
}
