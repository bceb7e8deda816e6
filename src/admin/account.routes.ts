import { Router, type RequestHandler, type Request, type Response } from 'express';
import type { OperatorService } from '../operators/operator.service.ts';
import { sessionOf, type AdminAuth, type AdminSession } from './admin-session.ts';
import { ACCOUNT_PATH } from './login.routes.ts';
import type { RenderConsole } from './render-console.ts';

type PasswordError = 'mismatch' | 'wrong_current' | 'same' | 'weak' | 'locked' | 'missing';

const text = (value: unknown) => (typeof value === 'string' ? value : '');

/**
 * Mounted after the account routes: after a one-time password they are all a session may use (sign-out too, routed
 * before) until the password is changed.
 */
export const requirePasswordChanged: RequestHandler = (_req, res, next) => (sessionOf(res)?.mustChangePassword ? res.redirect(303, ACCOUNT_PATH) : next());

/** `/admin/account`: every user's own password change and "sign out my other sessions" (both re-issue this session's cookie). */
export function accountRoutes(deps: { auth: AdminAuth; operators: Pick<OperatorService, 'changePassword' | 'endSessions'>; render: RenderConsole }): Router {
  const { auth, operators, render } = deps;
  const router = Router();
  const current = (res: Response) => sessionOf(res) as AdminSession;

  const show = (req: Request, res: Response, extra: { error?: PasswordError; reason?: string } = {}, status = 200) =>
    render(req, res, 'admin/account', null, { account: current(res), error: extra.error ?? null, reason: extra.reason ?? null }, status);

  router.get('/account', (req, res) => show(req, res));

  router.post('/account/password', async (req, res) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const next = text(body.new_password);
    if (!text(body.current_password) || !next) return show(req, res, { error: 'missing' }, 400);
    if (next !== text(body.confirm_password)) return show(req, res, { error: 'mismatch' }, 400);
    const session = current(res);
    const wasOneTime = session.mustChangePassword;
    const result = await operators.changePassword(session.id, body.current_password, next, { operator: session.operator, remoteIp: req.ip ?? null });
    if (result.kind === 'weak') return show(req, res, { error: 'weak', reason: result.reason }, 400);
    if (result.kind === 'locked') return show(req, res, { error: 'locked' }, 423);
    if (result.kind !== 'changed') return show(req, res, { error: result.kind }, 400);
    // Other sessions end with the new epoch; this one carries on under it.
    auth.reissue(req, res, session, result.sessionEpoch);
    res.redirect(303, wasOneTime ? '/admin?flash=password_changed' : `${ACCOUNT_PATH}?flash=password_changed`);
  });

  router.post('/account/sessions', async (req, res) => {
    const session = current(res);
    const epoch = await operators.endSessions(session.id, { operator: session.operator, remoteIp: req.ip ?? null });
    auth.reissue(req, res, session, epoch);
    res.redirect(303, `${ACCOUNT_PATH}?flash=sessions_ended`);
  });

  return router;
}
