import request from 'supertest';
import type { Express } from 'express';
import { expect } from 'vitest';
import { TEST_ENV } from './context.ts';
import { unescapeHtml } from './pages.ts';

export const ADMIN_PASSWORD = TEST_ENV.ADMIN_PASSWORD!;

/** The `_csrf` value of the first form on a page. */
export function csrfOf(html: string): string {
  const token = /name="_csrf" value="([^"]+)"/.exec(html)?.[1];
  if (!token) throw new Error(`no CSRF token in page: ${html.slice(0, 300)}`);
  return unescapeHtml(token);
}

/** The value of cookie `name` in a response's Set-Cookie headers, with its attributes. */
export function setCookie(res: request.Response, name: string): string | undefined {
  const headers = ([] as string[]).concat(res.headers['set-cookie'] ?? []);
  return headers.find((h) => h.startsWith(`${name}=`));
}

/** A cookie-keeping agent signed in to the console (GET login for the CSRF cookie, then POST the password). */
export async function signedInAgent(app: Express, operator = 'Alice'): Promise<request.Agent> {
  const agent = request.agent(app);
  const page = await agent.get('/admin/login');
  expect(page.status).toBe(200);
  const res = await agent
    .post('/admin/login')
    .type('form')
    .send({ _csrf: csrfOf(page.text), operator, password: ADMIN_PASSWORD });
  expect(res.status, res.text.slice(0, 300)).toBe(303);
  return agent;
}

/** GET a console page with the agent and return its CSRF token with the HTML. */
export async function consolePage(agent: request.Agent, path: string, status = 200): Promise<{ html: string; csrf: string }> {
  const res = await agent.get(path);
  expect(res.status, res.text.slice(0, 500)).toBe(status);
  return { html: res.text, csrf: csrfOf(res.text) };
}
