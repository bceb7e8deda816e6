import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** One alerting rule as written in docs/prometheus/alerts.yml. */
export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

const RULE_KEYS = new Set(['alert', 'expr', 'for', 'labels', 'annotations']);
const indentOf = (line: string) => line.length - line.trimStart().length;

/** `'it''s'` → `it's`; plain scalars as they are. */
function scalar(text: string): string {
  const value = text.trim();
  if (value.startsWith("'") && value.endsWith("'")) return value.slice(1, -1).replaceAll("''", "'");
  if (value.startsWith('"')) throw new Error(`use single quotes in the rules file: ${value}`);
  return value;
}

/**
 * Reads the rules file's fixed layout (groups → rules → alert/expr/for/labels/annotations, a multi-line
 * expr as a `|` block). No YAML parser is installed, so anything outside that layout is refused rather than
 * skipped, and the caller compares the count with promtool's own.
 */
export function readAlertRules(text: string): AlertRule[] {
  const rules: AlertRule[] = [];
  const lines = text.split('\n');
  const at = (i: number): string => lines[i] ?? '';
  let rule: AlertRule | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = at(i);
    if (/^\s*(#.*)?$/.test(line) || /^(groups:|\s+- name: \S+|\s+rules:)$/.test(line)) continue;
    const start = /^\s+- alert: (\S+)$/.exec(line);
    if (start) {
      rule = { alert: start[1]!, expr: '', labels: {}, annotations: {} };
      rules.push(rule);
      continue;
    }
    const field = /^(\s+)(\w+):(.*)$/.exec(line);
    const [, indent = '', key = '', rest = ''] = field ?? [];
    if (!rule || !field || !RULE_KEYS.has(key)) throw new Error(`line ${i + 1} is outside the rules file's layout: ${line}`);
    // The lines indented deeper than the key belong to it (a `|` block, or a label or annotation map).
    const nested: string[] = [];
    while (i + 1 < lines.length && (at(i + 1).trim() === '' || indentOf(at(i + 1)) > indent.length)) nested.push(at(++i));
    if (key === 'expr')
      rule.expr =
        rest.trim() === '|'
          ? nested
              .map((l) => l.trim())
              .join('\n')
              .trim()
          : scalar(rest);
    else if (key === 'for') rule.for = scalar(rest);
    else if (key === 'labels' || key === 'annotations') {
      for (const entry of nested.filter((l) => l.trim() !== '')) {
        const [, name, value] = /^\s+(\w+): (.+)$/.exec(entry) ?? [];
        if (!name || !value) throw new Error(`${rule.alert}: unreadable ${key} entry: ${entry}`);
        rule[key][name] = scalar(value);
      }
    }
  }
  return rules;
}

export interface Selector {
  metric: string;
  matchers: Array<{ label: string; op: string; value: string }>;
}

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);

/** The metric selectors and the grouping labels (by, without, on, ignoring, group_*) of a PromQL expression. */
export function inspectPromql(expr: string): { selectors: Selector[]; groupingLabels: string[] } {
  const selectors: Selector[] = [];
  const groupingLabels: string[] = [];
  let rest = expr.replace(/([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}/g, (_all, metric: string, body: string) => {
    const matchers = [...body.matchAll(/(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"/g)].map(([, label = '', op = '', value = '']) => ({ label, op, value }));
    selectors.push({ metric, matchers });
    return ` ${metric}§ `; // marked: already recorded with its matchers
  });
  if (rest.includes('{')) throw new Error(`a selector without a metric name: ${expr}`);
  rest = rest.replace(/\[[^\]]*\]/g, ' ');
  rest = rest.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g, (_all, _kw, list: string) => {
    groupingLabels.push(
      ...list
        .split(',')
        .map((l) => l.trim())
        .filter(Boolean),
    );
    return ' ';
  });
  for (const match of rest.matchAll(/\d+(?:\.\d+)?[a-z]*|([a-zA-Z_:][\w:]*)(§)?/g)) {
    const [, name, marked] = match;
    if (!name || marked || KEYWORDS.has(name)) continue;
    const next = rest.slice(match.index + match[0].length).trimStart();
    if (!next.startsWith('(')) selectors.push({ metric: name, matchers: [] }); // a function or an aggregation is followed by (
  }
  return { selectors, groupingLabels };
}

/** The path of `command` on PATH, or null. */
export function onPath(command: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, command))) return join(dir, command);
  }
  return null;
}

/** Runs a tool to its end; never rejects, so a failure's output reaches the assertion message. */
export function runTool(file: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, output: `${stdout}${stderr}${err && typeof err.code !== 'number' ? err.message : ''}` });
    });
  });
}
