import express from 'express';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { MAX_GROUP } from '../src/callbacks/callback.service.ts';
import { GROUP_LIST_ROWS, listQueryTemplate } from '../src/db/fast-path/query-template.ts';
import { createTestContext } from './helpers/context.ts';

/** The fast path's written contract (docs/architecture.md, "Fast path contract"), checked. */
const ROOT = join(import.meta.dirname, '..');
const sourceFiles = (dir: string): string[] =>
  readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
const parse = (file: string, text = readFileSync(join(ROOT, file), 'utf8')) => ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);

function calls(source: ts.SourceFile, visit: (call: ts.CallExpression) => void): void {
  const walk = (node: ts.Node): void => {
    if (ts.isCallExpression(node)) visit(node);
    ts.forEachChild(node, walk);
  };
  walk(source);
}

/** Kysely's ways to put text into SQL verbatim; the first argument becomes SQL (or an identifier), not a parameter. */
const VERBATIM = new Set(['sql.raw', 'sql.lit', 'sql.literal', 'sql.id', 'sql.ref', 'sql.table', 'CompiledQuery.raw']);
/** Uses whose text is not a constant, each reviewed: the reason must stay true. */
const REVIEWED: Record<string, string> = {
  // The batch joins statement texts Kysely compiled (and the constants of the same file); values stay parameters.
  "src/db/fast-path/batched-transaction.ts: CompiledQuery.raw(texts.join(';\\n'), parameters)": 'joins compiled statements',
};

/** Top-level `const NAME = <literal>` of a file. */
function constants(source: ts.SourceFile): Set<string> {
  const names = new Set<string>();
  for (const statement of source.statements) {
    if (!ts.isVariableStatement(statement) || !(statement.declarationList.flags & ts.NodeFlags.Const)) continue;
    for (const d of statement.declarationList.declarations) if (ts.isIdentifier(d.name) && d.initializer && isLiteral(d.initializer)) names.add(d.name.text);
  }
  return names;
}
const isLiteral = (n: ts.Node): boolean =>
  ts.isStringLiteral(n) ||
  ts.isNoSubstitutionTemplateLiteral(n) ||
  ts.isNumericLiteral(n) ||
  n.kind === ts.SyntaxKind.NullKeyword ||
  n.kind === ts.SyntaxKind.TrueKeyword ||
  n.kind === ts.SyntaxKind.FalseKeyword;

/** Every verbatim-SQL call of `source` whose first argument is not a constant, as `file: call text`. */
function verbatimInputs(file: string, source: ts.SourceFile): string[] {
  const known = constants(source);
  const found: string[] = [];
  calls(source, (call) => {
    if (!VERBATIM.has(call.expression.getText(source))) return;
    const first = call.arguments[0];
    if (first && (isLiteral(first) || (ts.isIdentifier(first) && known.has(first.text)))) return;
    found.push(`${file}: ${call.getText(source)}`);
  });
  return found;
}

describe('fast path contract', () => {
  it('MAX_GROUP is within the rows the grouped list templates keep compiled', () => {
    expect(MAX_GROUP).toBeLessThanOrEqual(GROUP_LIST_ROWS);
    // Kept means compiled once: a MAX_GROUP-row list builds once however often it is bound; a longer one than kept, every time.
    let builds = 0;
    const template = listQueryTemplate(
      {},
      { id: true },
      GROUP_LIST_ROWS,
      (db, _v, rows: readonly { id: number }[]) => (
        builds++,
        db
          .selectFrom('orders')
          .select('id')
          .where(
            'id',
            'in',
            rows.map((r) => r.id),
          )
      ),
    );
    return createTestContext('sqlite').then(async (ctx) => {
      try {
        const rows = (n: number) => Array.from({ length: n }, (_, id) => ({ id }));
        for (let i = 0; i < 3; i++) template.bind(ctx.db.kysely, {}, rows(MAX_GROUP));
        expect(builds).toBe(1);
        for (let i = 0; i < 2; i++) template.bind(ctx.db.kysely, {}, rows(GROUP_LIST_ROWS + 1));
        expect(builds).toBe(3);
      } finally {
        await ctx.close();
      }
    });
  });

  it('every list template of the grouped callback transaction keeps GROUP_LIST_ROWS lengths compiled', () => {
    const files = [
      'src/orders/order.repository.ts',
      'src/orders/order-event.repository.ts',
      'src/callbacks/nonce.repository.ts',
      'src/callbacks/payment-log.repository.ts',
    ];
    const limits = files.flatMap((file) => {
      const source = parse(file);
      const found: string[] = [];
      calls(source, (call) => {
        if (call.expression.getText(source) === 'listQueryTemplate') found.push(`${file}: ${call.arguments[2]?.getText(source)}`);
      });
      return found;
    });
    expect(limits.length).toBeGreaterThanOrEqual(6);
    expect(limits.filter((l) => !l.endsWith(': GROUP_LIST_ROWS'))).toEqual([]);
  });

  it('no SQL text in src is built from input: sql.raw, sql.lit, sql.id, sql.ref, sql.table and CompiledQuery.raw get constants', () => {
    const found = sourceFiles('src').flatMap((file) => verbatimInputs(relative(ROOT, join(ROOT, file)), parse(file)));
    expect(found.filter((f) => !(f in REVIEWED))).toEqual([]);
    // A reviewed use that is gone must leave the list, so the list never vouches for code that changed.
    expect(Object.keys(REVIEWED).filter((r) => !found.includes(r))).toEqual([]);
  });

  it('the check above finds input in SQL text', () => {
    const code = `const OK = 'select 1'; const TWO = 2;
      sql.raw(OK); sql.lit(TWO); sql.lit(null); CompiledQuery.raw('commit');
      function f(n: number) { sql.raw(input); sql.lit(n); sql.raw(\`select \${x}\`); CompiledQuery.raw('select ' + y, []); sql.id(column); }`;
    expect(verbatimInputs('x.ts', parse('x.ts', code)).map((f) => f.slice('x.ts: '.length))).toEqual([
      'sql.raw(input)',
      'sql.lit(n)',
      'sql.raw(`select ${x}`)',
      "CompiledQuery.raw('select ' + y, [])",
      'sql.id(column)',
    ]);
  });

  it('only the batched path uses the batch-only pool (the one that accepts several statements per request)', () => {
    const users = sourceFiles('src').filter((file) => /\bbatchKysely\b/.test(readFileSync(join(ROOT, file), 'utf8')));
    expect(users.sort()).toEqual(['src/db/database.ts', 'src/db/fast-path/batched-transaction.ts']);
  });
});

/** An Express app (what express() returns): its handle() re-parents each request into its own prototypes. */
const isExpressApp = (f: unknown) => typeof f === 'function' && typeof (f as { handle?: unknown }).handle === 'function' && 'request' in f && 'response' in f;

/** Express re-parents a request into a mounted app's prototypes and back on every request through it. */
function mountedApps(stack: unknown[], at = ''): string[] {
  const found: string[] = [];
  for (const layer of stack as Array<{ name?: string; handle?: { stack?: unknown[] }; route?: { stack: unknown[]; path: string } }>) {
    // app.use(subApp) wraps it in mounted_app; router.use(subApp) takes the app itself.
    if (layer.name === 'mounted_app' || isExpressApp(layer.handle)) found.push(at || '/');
    if (Array.isArray(layer.handle?.stack)) found.push(...mountedApps(layer.handle.stack, `${at}/…`));
    if (layer.route) found.push(...mountedApps(layer.route.stack, `${at}${layer.route.path}`));
  }
  return found;
}

describe('the no sub-app rule (src/server.ts builds requests with the app prototypes)', () => {
  it('the service mounts routers only, never an Express app', async () => {
    const ctx = await createTestContext('sqlite');
    try {
      expect(mountedApps(ctx.app.router.stack)).toEqual([]);
    } finally {
      await ctx.close();
    }
  });

  it('the check finds a mounted app, also inside a router', () => {
    const app = express();
    const router = express.Router();
    router.use('/inner', express());
    app.use('/outer', express());
    app.use('/r', router);
    expect(mountedApps(app.router.stack)).toHaveLength(2);
  });
});
