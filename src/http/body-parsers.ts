import express, { type Request, type RequestHandler } from 'express';

const BODY_LIMIT = '64kb';
const UTF8 = /^utf-?8$/i;

/** Keeps the exact body bytes: gateways sign raw bodies, and payment logs store requests verbatim. */
export const keepRawBody = (req: Request, _res: unknown, buf: Buffer) => {
  (req as Request & { rawBody?: Buffer }).rawBody = buf;
};

/** A form in another charset is refused (415) as the urlencoded parser would; its bytes would not be what was signed. */
const formCharset: RequestHandler = (req, _res, next) => {
  const type = req.headers['content-type'];
  const charset = type?.toLowerCase().startsWith('application/x-www-form-urlencoded') ? /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(type)?.[1] : undefined;
  if (charset !== undefined && !UTF8.test(charset)) {
    next(Object.assign(new Error(`unsupported charset "${charset.toUpperCase()}"`), { status: 415, expose: true, type: 'charset.unsupported' }));
    return;
  }
  next();
};

export const jsonBody = () => express.json({ limit: BODY_LIMIT, type: ['application/json', 'application/*+json'], verify: keepRawBody });
export const formBody = () => express.urlencoded({ extended: false, limit: BODY_LIMIT, parameterLimit: 256, verify: keepRawBody });

/**
 * Body readers for server-to-server notifications: JSON is parsed as usual, a form is only read (its raw
 * bytes are decoded once by callbackInput, exactly as sent), so the busiest request is not parsed twice.
 */
export function notifyBodyParsers(): RequestHandler[] {
  return [jsonBody(), formCharset, express.raw({ limit: BODY_LIMIT, type: 'application/x-www-form-urlencoded', verify: keepRawBody })];
}

/** Body readers for the browser's return (/callback): the result page also reads the parsed form. */
export function pageBodyParsers(): RequestHandler[] {
  return [jsonBody(), formBody()];
}
