import { Router } from 'express';
import { messages, resolveLang } from '../pages/i18n.ts';
import type { RenderConsole } from './render-console.ts';
import { PERIODS, type DashboardService, type Period } from './dashboard.service.ts';

/** `GET /admin`: health at a glance for the chosen period (24 h by default). */
export function dashboardRoutes(dashboard: DashboardService, render: RenderConsole): Router {
  const router = Router();
  router.get('/', async (req, res) => {
    const period: Period = typeof req.query.period === 'string' && Object.hasOwn(PERIODS, req.query.period) ? (req.query.period as Period) : '24h';
    const data = await dashboard.load(period, messages(resolveLang(req, res)));
    await render(req, res, 'admin/dashboard', 'dashboard', { title: 'dashboard', data, periods: Object.keys(PERIODS) });
  });
  return router;
}
