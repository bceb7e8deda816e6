import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import { readCookie } from '../shared/cookies.ts';
import type { Clock } from '../shared/time.ts';

export const SESSION_COOKIE = 'pcs_admin';
export const SESSION_TTL_MS = 8 * 3_600_000;
const COOKIE_PATH = '/admin';

export interface AdminSession {
  /** Random per sign-in (the signature for sessions issued before it was added): console CSRF tokens are bound to it. */
  id: string;
  /** The name the operator gave at login (audit attribution); `admin` when none. */
  operator: string;
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
 * Stateless signed sessions: `<base64url(json)>.<base64url(hmac)>` with an absolute expiry. The key mixes
 * SESSION_SECRET with a hash of ADMIN_PASSWORD, so changing either ends every session.
 */
export function createAdminAuth(options: { password: string; secret: string; clock: Clock; ttlMs?: number }) {
  const ttlMs = options.ttlMs ?? SESSION_TTL_MS;
  const passwordHash = createHash('sha256').update(options.password).digest('hex');
  const key = createHmac('sha256', options.secret).update(`pcs-admin-session\0${passwordHash}`).digest();
  const mac = (text: string) => createHmac('sha256', key).update(text).digest();

  /** Constant time whatever the lengths: both sides are hashed to 32 bytes before comparing. */
  function checkPassword(given: unknown): boolean {
    if (typeof given !== 'string' || given.length === 0 || given.length > 1024) return false;
    return timingSafeEqual(mac(`password\0${given}`), mac(`password\0${options.password}`));
  }

  function encode(operator: string): string {
    const now = options.clock().getTime();
    const body = Buffer.from(JSON.stringify({ v: 1, sid: randomBytes(16).toString('base64url'), op: operator, iat: now, exp: now + ttlMs })).toString(
      'base64url',
    );
    return `${body}.${mac(`session\0${body}`).toString('base64url')}`;
  }

  function decode(value: string | undefined): AdminSession | null {
    if (!value || value.length > 1024) return null;
    const [body, sig, extra] = value.split('.');
    if (!body || !sig || extra !== undefined) return null;
    const expected = mac(`session\0${body}`);
    const given = Buffer.from(sig, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
    try {
      const data = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as { v?: unknown; sid?: unknown; op?: unknown; iat?: unknown; exp?: unknown };
      if (data.v !== 1 || typeof data.op !== 'string' || typeof data.iat !== 'number' || typeof data.exp !== 'number') return null;
      if (data.exp <= options.clock().getTime()) return null;
      return { id: typeof data.sid === 'string' ? data.sid : sig, operator: data.op, issuedAt: data.iat, expiresAt: data.exp };
    } catch {
      return null;
    }
  }

  function signIn(req: Request, res: Response, operator: string): void {
    res.cookie(SESSION_COOKIE, encode(operator), { httpOnly: true, sameSite: 'strict', secure: req.secure, path: COOKIE_PATH, maxAge: ttlMs });
  }

  function signOut(req: Request, res: Response): void {
    res.clearCookie(SESSION_COOKIE, { httpOnly: true, sameSite: 'strict', secure: req.secure, path: COOKIE_PATH });
  }

  const current = (req: Request) => decode(readCookie(req.headers.cookie, SESSION_COOKIE));

  /** Console pages need a session: a GET goes to the login and comes back; other methods start over at the login. */
  const requireAdmin: RequestHandler = (req, res, next) => {
    const session = current(req);
    if (session) {
      res.locals.admin = session;
      return next();
    }
    const back = req.method === 'GET' || req.method === 'HEAD' ? safeNext(req.originalUrl) : '/admin';
    res.redirect(303, back === '/admin' ? '/admin/login' : `/admin/login?next=${encodeURIComponent(back)}`);
  };

  return { checkPassword, signIn, signOut, current, requireAdmin };
}

export type AdminAuth = ReturnType<typeof createAdminAuth>;

/** The signed-in operator of a console request (set by requireAdmin). */
export const operatorOf = (res: Response): string => (res.locals.admin as AdminSession | undefined)?.operator ?? 'admin';
