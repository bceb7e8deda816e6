import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import { AppError } from '../shared/errors.ts';
import { readCookie } from '../shared/cookies.ts';

const COOKIE = 'pcs_csrf';
const SEED = /^[A-Za-z0-9_-]{32,64}$/;

/** The id of the signed-in session a request carries, or null (no session, or one this Csrf does not know of). */
export type SessionOf = (req: Request) => string | null;

/**
 * CSRF tokens signed with SESSION_SECRET. With a session (the console's, through `sessionOf`) the token is
 * HMAC("csrf:session:" + session id): a page of that session is the only source, and no cookie a sibling
 * site could plant changes it. Without one (login form, sandbox) it is a signed double submit: a random
 * HttpOnly cookie, and forms carry HMAC("csrf:" + cookie). A cross-site form can neither read the session
 * or the cookie nor forge the HMAC, and a visitor's (cookie, token) pair never passes for a session.
 */
export function createCsrf(secret: string, sessionOf: SessionOf = () => null) {
  const mac = (text: string) => createHmac('sha256', secret).update(text).digest('base64url');
  const seedToken = (seed: string) => mac(`csrf:${seed}`);
  const sessionToken = (sessionId: string) => mac(`csrf:session:${sessionId}`);

  /** The token forms of this request must carry: the session's when there is one, else the seed cookie's. */
  function expected(req: Request): string | null {
    const sessionId = sessionOf(req);
    if (sessionId) return sessionToken(sessionId);
    const seed = readCookie(req.headers.cookie, COOKIE);
    return seed && SEED.test(seed) ? seedToken(seed) : null;
  }

  /** The token to embed in a form; without a session, sets the seed cookie on first use. */
  function issue(req: Request, res: Response): string {
    const token = expected(req);
    if (token) return token;
    const seed = randomBytes(32).toString('base64url');
    res.cookie(COOKIE, seed, { httpOnly: true, sameSite: 'strict', secure: req.secure, path: '/' });
    return seedToken(seed);
  }

  /** 403 `forbidden` unless the body's `_csrf` (or `X-CSRF-Token`) is this request's token. */
  const verify: RequestHandler = (req, _res, next) => {
    const body = req.body as Record<string, unknown> | undefined;
    const presented = typeof body?._csrf === 'string' ? body._csrf : req.get('x-csrf-token');
    const token = expected(req);
    const want = token ? Buffer.from(token) : null;
    const given = Buffer.from(presented ?? '');
    if (!want || given.length !== want.length || !timingSafeEqual(given, want)) {
      next(new AppError('forbidden', 'The form has expired or did not come from this site; reload the page and try again'));
      return;
    }
    next();
  };

  /** The same tokens, bound to the session `of` finds in a request (the console's). */
  const forSession = (of: SessionOf) => createCsrf(secret, of);

  return { issue, verify, forSession };
}

export type Csrf = ReturnType<typeof createCsrf>;
