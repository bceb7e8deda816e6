import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { SettingValidationError } from '../settings/settings.keys.ts';
import { parseOrThrow } from '../shared/validation.ts';
import { operatorOf } from './admin-session.ts';
import type { RenderConsole } from './render-console.ts';
import type { ConsoleSettings } from './settings.service.ts';

const keyField = z.string().min(1).max(128);
const saveBody = z.object({ key: keyField, value: z.string() });
const resetBody = z.object({ key: keyField });

/** The HTML id of a setting's card (dots would need escaping in CSS selectors). */
export const settingAnchor = (key: string) => `setting-${key.replace(/\./g, '-')}`;

/** `/admin/settings`: system_config (secrets masked), runtime overrides (POST + CSRF), their audit history. */
export function settingsRoutes(settings: ConsoleSettings, render: RenderConsole): Router {
  const router = Router();

  const show = async (
    req: Request,
    res: Response,
    extra: { errors?: Record<string, SettingValidationError>; submitted?: Record<string, string> } = {},
    status = 200,
  ) => {
    const data = await settings.page();
    await render(
      req,
      res,
      'admin/settings',
      'settings',
      { ...data, errors: extra.errors ?? {}, submitted: extra.submitted ?? {}, anchor: settingAnchor },
      status,
    );
  };

  router.get('/', (req, res) => show(req, res));

  router.post('/', async (req, res) => {
    const { key, value } = parseOrThrow(saveBody, req.body ?? {}, 'setting');
    try {
      const flash = await settings.save(key, value, { operator: operatorOf(res), remoteIp: req.ip ?? null });
      res.redirect(303, `/admin/settings?flash=${flash}#${settingAnchor(key)}`);
    } catch (err) {
      if (!(err instanceof SettingValidationError)) throw err;
      // Shown on the page, next to the form, with what was typed; nothing was stored.
      await show(req, res, { errors: { [key]: err }, submitted: { [key]: value } }, 400);
    }
  });

  router.post('/reset', async (req, res) => {
    const { key } = parseOrThrow(resetBody, req.body ?? {}, 'setting');
    const flash = await settings.reset(key, { operator: operatorOf(res), remoteIp: req.ip ?? null });
    res.redirect(303, `/admin/settings?flash=${flash}#${settingAnchor(key)}`);
  });

  return router;
}
