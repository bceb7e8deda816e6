import type { Request, Response } from 'express';
import type { Csrf } from '../http/csrf.ts';
import { consoleLocals, type NavKey } from './admin-view.ts';
import type { Inbox } from './inbox.service.ts';

/** Renders a console page inside the console layout (navigation with the inbox badge, CSRF token, flash). */
export type RenderConsole = (
  req: Request,
  res: Response,
  view: string,
  active: NavKey | null,
  locals: Record<string, unknown>,
  status?: number,
) => Promise<void>;

/** The console's renderer: the inbox badge counts unreviewed entries on every page. */
export function consoleRenderer(csrf: Csrf, inbox: Inbox): RenderConsole {
  return async (req, res, view, active, locals, status = 200) => {
    const unreviewed = await inbox.unreviewedCount();
    res.status(status).render(view, { ...consoleLocals(req, res, csrf, active, { inbox: unreviewed }), ...locals });
  };
}
