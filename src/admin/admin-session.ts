import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import type { Operator, Role } from '../operators/operator.rules.ts';
import { readCookie } from '../shared/cookies.ts';
import type { Clock } from '../shared/time.ts';

export const SESSION_COOKIE = 'pcs_admin';
export const SESSION_TTL_MS = 8 * 3_600_000;
const COOKIE_PATH = '/admin';

/** What a session cookie says (signed): which account, at which of its session epochs, until when. */
export interface SessionClaims {
  /** Random per sign-in, kept when the cookie is re-issued: console CSRF tokens are bound to it. */
  sid: string;
  /** operators.id */
  uid: number;
  /** operators.session_epoch when issued; the session is over once the account's epoch moves on. */
  epoch: number;
  issuedAt: number;
  expiresAt: number;
}

/** res.locals.admin of a signed-in console request: the account as loaded for this request, and its session. */
export interface AdminSession {
  /** operators.id */
  id: number;
  /** The username (audit attribution). */
  operator: string;
  role: Role;
  sid: string;
  sessionEpoch: number;
  mustChangePassword: boolean;
  totpEnabled: boolean;
  issuedAt: number;
  expiresAt: number;
}

/** Only relative console paths are followed after login: never another origin, never outside /admin. */
export function safeNext(value: unknown): string {
  if (typeof value !== 'string' || value.length > 2048 || !value.startsWith('/') || /[\\\s]/.test(value) || value.startsWith('//')) return '/admin';
  try {
    const url = new URL(value, 'http://console.invalid');
    if (url.origin !== 'http://console.invalid' || !(url.pathname === '/admin' || url.pathname.startsWith('/admin/'))) return '/admin';
    if (url.pathname.startsWith('/admin/login') || url.pathname.startsWith('/admin/logout')) return '/admin';
    return `${url.pathname}${url.search}`;
  } catch {
    return '/admin';
  }
}

/**
 * Signed sessions: `<base64url(json)>.<base64url(hmac)>` with an absolute expiry, keyed by SESSION_SECRET (changing
 * it ends every session). Each request loads the account the cookie names: a disabled account or an epoch that has
 * moved on (password reset, "sign out my other sessions") ends the session at once.
 */
export function createAdminAuth(options: { secret: string; clock: Clock; operators: { findById(id: number): Promise<Operator | null> }; ttlMs?: number }) {
  const ttlMs = options.ttlMs ?? SESSION_TTL_MS;
  const key = createHmac('sha256', options.secret).update('pcs-admin-session\0v2').digest();
  const mac = (text: string) => createHmac('sha256', key).update(text).digest();

  function encode(claims: SessionClaims): string {
    const { sid, uid, epoch, issuedAt: iat, expiresAt: exp } = claims;
    const body = Buffer.from(JSON.stringify({ v: 2, sid, uid, ep: epoch, iat, exp })).toString('base64url');
    return `${body}.${mac(`session\0${body}`).toString('base64url')}`;
  }

  function decode(value: string | undefined): SessionClaims | null {
    if (!value || value.length > 1024) return null;
    const [body, sig, extra] = value.split('.');
    if (!body || !sig || extra !== undefined) return null;
    const expected = mac(`session\0${body}`);
    const given = Buffer.from(sig, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
    try {
      const data = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as Record<string, unknown>;
      const { v, sid, uid, ep, iat, exp } = data;
      if (v !== 2 || typeof sid !== 'string' || !Number.isSafeInteger(uid) || !Number.isSafeInteger(ep) || typeof iat !== 'number' || typeof exp !== 'number')
        return null;
      if (exp <= options.clock().getTime()) return null;
      return { sid, uid: uid as number, epoch: ep as number, issuedAt: iat, expiresAt: exp };
    } catch {
      return null;
    }
  }

  function setCookie(req: Request, res: Response, claims: SessionClaims): void {
    const maxAge = Math.max(0, claims.expiresAt - options.clock().getTime());
    res.cookie(SESSION_COOKIE, encode(claims), { httpOnly: true, sameSite: 'strict', secure: req.secure, path: COOKIE_PATH, maxAge });
  }

  /** A new session (new sid, full lifetime) for an account that has passed every sign-in step. */
  function signIn(req: Request, res: Response, operator: Pick<Operator, 'id' | 'sessionEpoch'>): void {
    const now = options.clock().getTime();
    setCookie(req, res, { sid: randomBytes(16).toString('base64url'), uid: operator.id, epoch: operator.sessionEpoch, issuedAt: now, expiresAt: now + ttlMs });
  }

  /** The current session under a new epoch (after its user ended their other sessions): same sid, same expiry. */
  function reissue(req: Request, res: Response, session: Pick<AdminSession, 'sid' | 'id' | 'issuedAt' | 'expiresAt'>, epoch: number): void {
    setCookie(req, res, { sid: session.sid, uid: session.id, epoch, issuedAt: session.issuedAt, expiresAt: session.expiresAt });
  }

  function signOut(req: Request, res: Response): void {
    res.clearCookie(SESSION_COOKIE, { httpOnly: true, sameSite: 'strict', secure: req.secure, path: COOKIE_PATH });
  }

  /** The cookie's claims, checked for signature and expiry only (what CSRF binds to); not whether the account still allows it. */
  const current = (req: Request) => decode(readCookie(req.headers.cookie, SESSION_COOKIE));

  /** The signed-in user, or null: a valid cookie whose account exists, is enabled and is still at the cookie's epoch. */
  async function load(req: Request): Promise<AdminSession | null> {
    const claims = current(req);
    if (!claims) return null;
    const operator = await options.operators.findById(claims.uid);
    if (!operator || operator.disabled || operator.sessionEpoch !== claims.epoch) return null;
    return {
      id: operator.id,
      operator: operator.username,
      role: operator.role,
      sid: claims.sid,
      sessionEpoch: operator.sessionEpoch,
      mustChangePassword: operator.mustChangePassword,
      totpEnabled: operator.totpEnabled,
      issuedAt: claims.issuedAt,
      expiresAt: claims.expiresAt,
    };
  }

  /** Console pages need a session: a GET goes to the login and comes back; other methods start over at the login. */
  const requireAdmin: RequestHandler = async (req, res, next) => {
    const session = await load(req);
    if (session) {
      res.locals.admin = session;
      return next();
    }
    // A cookie that no longer opens the console (ended, disabled) is dropped, so the login page starts clean.
    if (readCookie(req.headers.cookie, SESSION_COOKIE) !== undefined) signOut(req, res);
    const back = req.method === 'GET' || req.method === 'HEAD' ? safeNext(req.originalUrl) : '/admin';
    res.redirect(303, back === '/admin' ? '/admin/login' : `/admin/login?next=${encodeURIComponent(back)}`);
  };

  return { signIn, reissue, signOut, current, load, requireAdmin };
}

export type AdminAuth = ReturnType<typeof createAdminAuth>;

/** The signed-in console user of a request (set by requireAdmin). */
export const sessionOf = (res: Response): AdminSession | undefined => res.locals.admin as AdminSession | undefined;

/** The signed-in operator's username (audit rows name it). */
export const operatorOf = (res: Response): string => sessionOf(res)?.operator ?? 'admin';

/** The signed-in operator's role; `viewer` (the least) when there is none. */
export const roleOf = (res: Response): Role => sessionOf(res)?.role ?? 'viewer';
