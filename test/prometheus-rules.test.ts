import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VERDICTS } from '../src/admin/verdicts.ts';
import { GATEWAYS } from '../src/config.ts';
import { metricsOf, type RecordCallback } from '../src/metrics/metrics.registry.ts';
import { DELIVERY_OUTCOMES } from '../src/notifications/delivery.metrics.ts';
import type { CheckResult } from '../src/reconcile/reconcile.service.ts';
import type { CallOutcome } from '../src/refunds/refund-execution.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';
import { ENGINES } from './helpers/engines.ts';
import { inspectPromql, onPath, readAlertRules, runTool, type AlertRule } from './helpers/prometheus-rules.ts';

/** The Prometheus alerting rules shipped in docs/prometheus/: valid, tested, and about metrics the service exports. */

const RULES = fileURLToPath(new URL('../docs/prometheus/alerts.yml', import.meta.url));
const RULE_TESTS = fileURLToPath(new URL('../docs/prometheus/alerts.test.yml', import.meta.url));
const CI = process.env.CI === 'true';
const PROMTOOL = onPath('promtool');

if (!PROMTOOL && !CI) {
  console.warn(
    `\n${'!'.repeat(78)}\n!! promtool not found: the alerting rules were NOT checked by Prometheus (apt-get install prometheus).\n${'!'.repeat(78)}\n`,
  );
}

const REFUND_OUTCOMES = [
  'succeeded',
  'failed',
  'pending',
  'not_found',
  'unknown',
  'mismatch',
  'already',
  'contradicts',
] as const satisfies readonly CallOutcome[];
type MissingOutcome = Exclude<CallOutcome, (typeof REFUND_OUTCOMES)[number]>;
const _everyOutcomeListed: [MissingOutcome] extends [never] ? true : MissingOutcome = true;
const RECONCILE_OUTCOMES = [
  'recovered',
  'already_paid',
  'unchanged',
  'closed',
  'expired',
  'mismatch',
  'error',
  'not_queryable',
] as const satisfies readonly CheckResult['outcome'][];
const CALLBACK_VERDICTS = [...VERDICTS, 'unavailable', 'rate_limited'] as const satisfies readonly Parameters<RecordCallback>[1][];

/** The values a label may take, by metric; a rule matching any other value could never fire. */
const LABEL_VALUES: Record<string, Record<string, readonly string[]>> = {
  payment_callbacks_total: { gateway: GATEWAYS, verdict: CALLBACK_VERDICTS },
  payment_callbacks_dropped_total: { gateway: GATEWAYS },
  notification_deliveries_total: { outcome: DELIVERY_OUTCOMES },
  payments_recovered_total: { gateway: GATEWAYS },
  reconcile_queries_total: { gateway: GATEWAYS, outcome: RECONCILE_OUTCOMES },
  refund_calls_total: { gateway: GATEWAYS, action: ['refund', 'refund_query'], outcome: REFUND_OUTCOMES },
};
/** Made by Prometheus (up) and the blackbox exporter (probe_success), not the service: these must name their job. */
const SCRAPE_METRICS = new Set(['up', 'probe_success']);
const TARGET_LABELS = ['job', 'instance'];

/** Metric names of a text exposition, each with the label names its samples carry. */
function exported(text: string): Map<string, Set<string>> {
  const names = new Map<string, Set<string>>();
  const add = (name: string, labels: string[] = []) => {
    const set = names.get(name) ?? new Set<string>();
    labels.forEach((l) => set.add(l));
    names.set(name, set);
  };
  for (const [, name = '', type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    add(name);
    if (type === 'histogram') ['_bucket', '_sum', '_count'].forEach((suffix) => add(name + suffix));
    if (type === 'summary') ['_sum', '_count'].forEach((suffix) => add(name + suffix));
  }
  for (const [, name = '', body = ''] of text.matchAll(/^([a-zA-Z_:][\w:]*)\{([^}]*)\} \S+$/gm)) {
    add(
      name,
      [...body.matchAll(/(\w+)="/g)].map((m) => m[1] ?? ''),
    );
  }
  return names;
}

/** What is wrong with the selectors of `expr`; `where` names it in the messages. */
function problemsOf(where: string, expr: string, metrics: Map<string, Set<string>>, templateLabels: string[] = []): string[] {
  const problems: string[] = [];
  const { selectors, groupingLabels } = inspectPromql(expr);
  if (selectors.length === 0) problems.push(`${where}: names no metric`);
  const known = new Set(TARGET_LABELS);
  for (const { metric, matchers } of selectors) {
    if (SCRAPE_METRICS.has(metric)) {
      if (!matchers.some((m) => m.label === 'job' && m.op === '=')) problems.push(`${where}: ${metric} without {job="…"} would match every target`);
    } else if (!metrics.has(metric)) {
      problems.push(`${where}: ${metric} is not exported by the service`);
      continue;
    }
    const labels = new Set([...TARGET_LABELS, ...(metrics.get(metric) ?? [])]);
    labels.forEach((l) => known.add(l));
    for (const { label, op, value } of matchers) {
      if (!labels.has(label)) problems.push(`${where}: ${metric} has no label ${label}`);
      const allowed = LABEL_VALUES[metric]?.[label];
      if (!allowed || op.startsWith('!')) continue;
      const values = op === '=~' ? value.split('|') : [value];
      for (const v of values) if (!allowed.includes(v)) problems.push(`${where}: ${metric}{${label}="${v}"} is never exported`);
    }
  }
  for (const label of [...groupingLabels, ...templateLabels]) if (!known.has(label)) problems.push(`${where}: no metric of it has a label ${label}`);
  return problems;
}

const templateLabelsOf = (rule: AlertRule) => Object.values(rule.annotations).flatMap((text) => [...text.matchAll(/\$labels\.(\w+)/g)].map((m) => m[1] ?? ''));

describe.each(ENGINES)('the Prometheus alerting rules against a live /metrics on %s', (engine) => {
  let ctx: TestContext;
  let metrics: Map<string, Set<string>>;
  const rules = readAlertRules(readFileSync(RULES, 'utf8'));

  beforeAll(async () => {
    ctx = await createTestContext(engine);
    // One sample of each labelled family, so the scrape shows their label names.
    const hooks = metricsOf(ctx.app)!;
    hooks.recordCallback('generic', 'bad_signature');
    hooks.recordRejectDropped('generic');
    hooks.recordReconcile('generic', 'recovered');
    hooks.recordRefundCall('generic', 'refund', 'unknown');
    const res = await request(ctx.app).get('/metrics');
    expect(res.status).toBe(200);
    metrics = exported(res.text);
  });
  afterAll(() => ctx?.close());

  it('covers every condition of the service’s own alerts, each with a severity and a summary', () => {
    const conditions = ['PaymentNotificationDead', 'PaymentCallbackFlagged', 'PaymentCallbackBadSignatures', 'PaymentRecoveredByQuery'];
    conditions.push('NotificationBacklogOld', 'PaymentServiceDown', 'RefundOutcomeUnknown');
    expect(rules.map((r) => r.alert)).toEqual(expect.arrayContaining(conditions));
    expect(new Set(rules.map((r) => r.alert)).size).toBe(rules.length);
    for (const rule of rules) {
      expect(['warning', 'critical'], rule.alert).toContain(rule.labels.severity);
      expect(rule.annotations.summary, rule.alert).toBeTruthy();
      expect(rule.annotations.description, rule.alert).toBeTruthy();
      if (rule.for !== undefined) expect(rule.for, rule.alert).toMatch(/^\d+[smh]$/);
    }
  });

  it('names only metrics, labels and label values the service exports', () => {
    const problems = rules.flatMap((rule) => problemsOf(rule.alert, rule.expr, metrics, templateLabelsOf(rule)));
    expect(problems).toEqual([]);
  });

  it('feeds its rule unit tests only series the service exports', () => {
    const series = [...readFileSync(RULE_TESTS, 'utf8').matchAll(/^\s+- series: '(.+)'$/gm)].map((m) => m[1] ?? '');
    expect(series.length).toBeGreaterThan(0);
    expect(series.flatMap((s) => problemsOf(`series ${s}`, s, metrics))).toEqual([]);
  });

  it('refuses a misspelt metric, label or value (the check itself can fail)', () => {
    expect(problemsOf('t', 'increase(payment_callback_total[5m]) > 0', metrics)).toEqual(['t: payment_callback_total is not exported by the service']);
    expect(problemsOf('t', 'refund_calls_total{result="unknown"}', metrics)).toEqual(['t: refund_calls_total has no label result']);
    expect(problemsOf('t', 'notification_deliveries_total{outcome=~"dead|died"}', metrics)).toEqual([
      't: notification_deliveries_total{outcome="died"} is never exported',
    ]);
    expect(problemsOf('t', 'refund_calls_total{outcome="dead"}', metrics)).toEqual(['t: refund_calls_total{outcome="dead"} is never exported']);
    expect(problemsOf('t', 'sum by (verdict) (notification_backlog)', metrics)).toEqual(['t: no metric of it has a label verdict']);
    expect(problemsOf('t', 'up == 0', metrics)).toEqual(['t: up without {job="…"} would match every target']);
  });
});

describe.skipIf(!PROMTOOL && !CI)('the Prometheus alerting rules in promtool', () => {
  const need = (): string => {
    if (!PROMTOOL) throw new Error("CI=true but promtool is missing: the alerting rules must be checked in CI (.ci/run installs Debian's prometheus).");
    return PROMTOOL;
  };

  it('pass promtool check rules, which finds as many rules as this test reads', async () => {
    const { code, output } = await runTool(need(), ['check', 'rules', RULES]);
    expect(code, output).toBe(0);
    expect(output).toContain(`SUCCESS: ${readAlertRules(readFileSync(RULES, 'utf8')).length} rules found`);
  });

  it('pass their unit tests (promtool test rules)', async () => {
    const { code, output } = await runTool(need(), ['test', 'rules', RULE_TESTS]);
    expect(code, output).toBe(0);
    expect(output).toContain('SUCCESS');
  });
});
