import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { createTestContext, TEST_ENV, type TestContext } from './helpers/context.ts';
import { problemsOf } from './helpers/config-problems.ts';

/** /metrics is never public in production by accident: METRICS_TOKEN, or an explicit METRICS_PUBLIC=true. */

const PRODUCTION = { ...TEST_ENV, NODE_ENV: 'production' };

describe('METRICS_TOKEN in production', () => {
  const contexts: TestContext[] = [];
  afterAll(async () => {
    for (const ctx of contexts) await ctx.close();
  });

  it('refuses to start without METRICS_TOKEN, listed with the other problems', () => {
    const problems = problemsOf({ ...PRODUCTION, PORT: 'abc' });
    expect(problems).toEqual([
      expect.stringMatching(/^PORT: /),
      'METRICS_TOKEN: required in production, so that /metrics is not public (or set METRICS_PUBLIC=true to serve it without a token)',
    ]);
    expect(problemsOf({ ...PRODUCTION, METRICS_PUBLIC: 'maybe' })).toEqual([
      expect.stringMatching(/^METRICS_PUBLIC: /),
      expect.stringMatching(/^METRICS_TOKEN: required in production/),
    ]);
  });

  it('with METRICS_TOKEN, /metrics needs the bearer token', async () => {
    const token = randomBytes(24).toString('hex');
    const ctx = await createTestContext('sqlite', { env: { ...PRODUCTION, METRICS_TOKEN: token } });
    contexts.push(ctx);
    expect((await request(ctx.app).get('/metrics')).status).toBe(401);
    expect((await request(ctx.app).get('/metrics').set('Authorization', `Bearer ${token}x`)).status).toBe(401);
    expect((await request(ctx.app).get('/metrics').set('Authorization', `Bearer ${token}`)).status).toBe(200);
  });

  it('METRICS_PUBLIC=true serves it without a token, on purpose', async () => {
    const ctx = await createTestContext('sqlite', { env: { ...PRODUCTION, METRICS_PUBLIC: 'true' } });
    contexts.push(ctx);
    expect(ctx.config.metricsToken).toBeNull();
    expect((await request(ctx.app).get('/metrics')).status).toBe(200);
  });

  it('outside production /metrics stays open without a token (the documented default)', async () => {
    expect(loadConfig({ ...TEST_ENV }).metricsToken).toBeNull();
    expect(loadConfig({ ...TEST_ENV, NODE_ENV: 'development' }).metricsToken).toBeNull();
  });
});
