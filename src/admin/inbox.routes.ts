import { Router } from 'express';
import { z } from 'zod';
import { parseOrThrow } from '../shared/validation.ts';
import { operatorOf } from './admin-session.ts';
import type { RenderConsole } from './render-console.ts';
import { withQuery } from './admin-view.ts';
import type { InboxFilter } from './inbox.repository.ts';
import { NOTE_MAX, type Inbox } from './inbox.service.ts';

const FILTERS: InboxFilter[] = ['unreviewed', 'reviewed', 'all'];
const idParam = z.object({
  id: z
    .string()
    .regex(/^\d{1,15}$/)
    .transform(Number),
});
const reviewBody = z.object({ note: z.string().trim().min(1).max(NOTE_MAX) });

/** `/admin/inbox`: flagged callbacks, newest first; an operator marks each reviewed with a note. */
export function inboxRoutes(inbox: Inbox, render: RenderConsole): Router {
  const router = Router();

  router.get('/', async (req, res) => {
    const filter = FILTERS.find((f) => f === req.query.filter) ?? 'unreviewed';
    const page = typeof req.query.page === 'string' && /^[1-9]\d{0,5}$/.test(req.query.page) ? Number(req.query.page) : 1;
    const result = await inbox.list(filter, page);
    const url = (params: { filter?: InboxFilter; page?: number }) =>
      withQuery('/admin/inbox', {
        filter: (params.filter ?? filter) === 'unreviewed' ? undefined : (params.filter ?? filter),
        page: params.page && params.page > 1 ? params.page : undefined,
      });
    await render(req, res, 'admin/inbox', 'inbox', { result, filters: FILTERS, url, noteMax: NOTE_MAX });
  });

  router.post('/:id/review', async (req, res) => {
    const { id } = parseOrThrow(idParam, req.params, 'entry');
    const back = (flash: string) =>
      withQuery('/admin/inbox', {
        filter: typeof req.query.filter === 'string' && FILTERS.includes(req.query.filter as InboxFilter) ? req.query.filter : undefined,
        flash,
      });
    const body = reviewBody.safeParse(req.body ?? {});
    if (!body.success) return res.redirect(303, back('review_invalid'));
    const outcome = await inbox.review(id, body.data.note, { operator: operatorOf(res), remoteIp: req.ip ?? null });
    res.redirect(303, `${back(outcome)}#entry-${id}`);
  });

  return router;
}
