import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import { AppError } from '../shared/errors.ts';
import { readCookie } from './cookies.ts';

const COOKIE = 'pcs_csrf';

/**
 * Signed double-submit tokens: a random HttpOnly cookie, and forms carry HMAC(SESSION_SECRET, cookie).
 * A cross-site form can neither read the cookie nor forge the HMAC.
 */
export function createCsrf(secret: string) {
  const tokenFor = (seed: string) => createHmac('sha256', secret).update(`csrf:${seed}`).digest('base64url');

  /** The token to embed in a form; sets the cookie on first use. */
  function issue(req: Request, res: Response): string {
    let seed = readCookie(req.headers.cookie, COOKIE);
    if (!seed || !/^[A-Za-z0-9_-]{32,64}$/.test(seed)) {
      seed = randomBytes(32).toString('base64url');
      res.cookie(COOKIE, seed, { httpOnly: true, sameSite: 'strict', secure: req.secure, path: '/' });
    }
    return tokenFor(seed);
  }

  /** 403 `forbidden` unless the body's `_csrf` (or `X-CSRF-Token`) matches the cookie. */
  const verify: RequestHandler = (req, _res, next) => {
    const seed = readCookie(req.headers.cookie, COOKIE);
    const body = req.body as Record<string, unknown> | undefined;
    const presented = typeof body?._csrf === 'string' ? body._csrf : req.get('x-csrf-token');
    const expected = seed ? Buffer.from(tokenFor(seed)) : null;
    const given = Buffer.from(presented ?? '');
    if (!expected || given.length !== expected.length || !timingSafeEqual(given, expected)) {
      next(new AppError('forbidden', 'The form has expired or did not come from this site; reload the page and try again'));
      return;
    }
    next();
  };

  return { issue, verify };
}

export type Csrf = ReturnType<typeof createCsrf>;
