import type { RequestHandler } from 'express';
import { rateLimit, type Store } from 'express-rate-limit';
import type { ApiKeyService } from '../auth/api-key.service.ts';
import { AppError } from '../shared/errors.ts';
import type { IpAllowlist } from '../shared/ip-allowlist.ts';
import type { Logger } from '../shared/logger.ts';
import { rateLimitLogger } from './rate-limit-logger.ts';

/** 403 unless the client (req.ip, which honours TRUST_PROXY) is on the list; no list lets everyone in. */
export function ipAllowlist(list: IpAllowlist | null, what: string): RequestHandler {
  return (req, _res, next) => {
    if (list && !list.allows(req.ip)) {
      next(new AppError('forbidden', `${req.ip ?? 'This address'} is not allowed to call ${what}`));
      return;
    }
    next();
  };
}

/** Per-client limit per minute; 429 `rate_limited` with `Retry-After`. Fails open if the store is down. */
export function rateLimiter(limitPerMinute: number, store?: Store, logger?: Logger): RequestHandler {
  return rateLimit({
    logger: rateLimitLogger(logger, 'api'),
    windowMs: 60_000,
    limit: limitPerMinute,
    standardHeaders: 'draft-7',
    legacyHeaders: false,
    store,
    passOnStoreError: true,
    validate: { trustProxy: false, xForwardedForHeader: false },
    handler: (_req, _res, next) => next(new AppError('rate_limited', `Too many requests: at most ${limitPerMinute} per minute`)),
  });
}

function presentedKey(header: string | undefined, authorization: string | undefined): string | undefined {
  if (header) return header.trim();
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
  return bearer?.[1];
}

/** `X-API-Key: <key>` or `Authorization: Bearer <key>`; 401 `unauthorized` otherwise. */
export function requireApiKey(apiKeys: ApiKeyService): RequestHandler {
  return async (req, res, next) => {
    const key = presentedKey(req.get('x-api-key'), req.get('authorization'));
    if (!key) throw new AppError('unauthorized', 'Missing API key: send X-API-Key or Authorization: Bearer');
    const principal = await apiKeys.authenticate(key);
    if (!principal) throw new AppError('unauthorized', 'Invalid or revoked API key');
    res.locals.principal = principal;
    next();
  };
}
