import request from 'supertest';
import type { Express } from 'express';
import { expect } from 'vitest';
import { createOperatorService } from '../../src/operators/operator.service.ts';
import type { Role } from '../../src/operators/operator.rules.ts';
import { databaseOf, TEST_ENV } from './context.ts';
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

/**
 * A console account `username` with the test password (ADMIN_PASSWORD, not one-time), created when missing: `admin`
 * exists from the start; other names let tests tell operators apart in audit rows.
 */
export async function ensureOperator(app: Express, username: string, role: Role = 'admin'): Promise<void> {
  const operators = createOperatorService({ db: databaseOf(app), clock: () => new Date() });
  if (await operators.findByUsername(username)) return;
  await operators.create({ username, role, password: ADMIN_PASSWORD }, { operator: 'test' });
}

/** POSTs the login form with a fresh agent (GET login for the CSRF cookie first); the agent keeps the cookies. */
export async function postLogin(
  app: Express,
  username: string,
  password: string,
  path = '/admin/login',
): Promise<{ agent: request.Agent; res: request.Response }> {
  const agent = request.agent(app);
  const page = await agent.get(path);
  expect(page.status).toBe(200);
  const res = await agent
    .post(path)
    .type('form')
    .send({ _csrf: csrfOf(page.text), username, password });
  return { agent, res };
}

/** A cookie-keeping agent signed in to the console as `username` (created with the test password when missing). */
export async function signedInAgent(app: Express, username = 'admin'): Promise<request.Agent> {
  await ensureOperator(app, username);
  const { agent, res } = await postLogin(app, username, ADMIN_PASSWORD);
  expect(res.status, res.text.slice(0, 300)).toBe(303);
  return agent;
}

/** GET a console page with the agent and return its CSRF token with the HTML. */
export async function consolePage(agent: request.Agent, path: string, status = 200): Promise<{ html: string; csrf: string }> {
  const res = await agent.get(path);
  expect(res.status, res.text.slice(0, 500)).toBe(status);
  return { html: res.text, csrf: csrfOf(res.text) };
}
