import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../src/shared/paths.ts';
import { createTestContext, type TestContext } from './helpers/context.ts';

/**
 * User-facing text (the READMEs, INSTALL.md, docs/, the examples' README, the served OpenAPI document and
 * /docs page) speaks to users: no internal references, no run-by-run notes, and links that lead somewhere.
 */

/** Words and patterns that belong to the project's internal notes, never to user documentation. */
const FORBIDDEN: Array<[string, RegExp]> = [
  ['a reference to the internal design document', /\bDESIGN\b|\bdesign(?:'s)? (?:contract|document|doc)\b/i],
  ['an issue number', /\bissues?\s*#?\s*\d+|\bissue notes?\b/i],
  ['a comparison implementation kept outside the repository', /\byardsticks?\b|\.\.\/shared\b/i],
  ['a work-session note', /\b(?:this|last|previous|earlier|later) sessions?\b|\bbetween sessions\b|\bsession notes?\b/i],
];

function markdownFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return markdownFiles(path);
    return name.endsWith('.md') ? [path] : [];
  });
}

const USER_DOCS = [
  ...['README.md', 'README.zh-CN.md', 'INSTALL.md', 'examples/README.md'].map((p) => join(PROJECT_ROOT, p)),
  ...markdownFiles(join(PROJECT_ROOT, 'docs')),
];
const LINKED_DOCS = USER_DOCS;
const rel = (path: string) => relative(PROJECT_ROOT, path);

/** Every forbidden word in `text`, as "what: the line". */
function forbiddenIn(text: string): string[] {
  const found: string[] = [];
  for (const line of text.split('\n')) {
    for (const [what, pattern] of FORBIDDEN) if (pattern.test(line)) found.push(`${what}: ${line.trim().slice(0, 160)}`);
  }
  return found;
}

/** The markdown outside fenced code blocks (links and headings there are text, not markdown). */
function prose(markdown: string): string {
  let fenced = false;
  return markdown
    .split('\n')
    .filter((line) => {
      if (/^\s*```/.test(line)) {
        fenced = !fenced;
        return false;
      }
      return !fenced;
    })
    .join('\n');
}

/** GitHub's heading anchors: lower case, punctuation dropped, each space a hyphen, repeats numbered. */
function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of prose(markdown).split('\n')) {
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)?.[1];
    if (heading === undefined) continue;
    const base = heading
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\p{M}\s_-]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

/** Relative link targets of `[text](target)` and `![alt](target)` outside code. */
function relativeLinks(markdown: string): string[] {
  const text = prose(markdown).replace(/`[^`\n]*`/g, '');
  return [...text.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1]!).filter((target) => !/^[a-z][a-z0-9+.-]*:/i.test(target));
}

describe('user documentation', () => {
  it.each(USER_DOCS.map((p) => [rel(p), p]))('%s has no internal references (issues, design notes, sessions, outside comparisons)', (_name, path) => {
    expect(forbiddenIn(readFileSync(path, 'utf8'))).toEqual([]);
  });

  it('README.md is a front door: under 300 lines', () => {
    const lines = readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8').split('\n').length;
    expect(lines).toBeLessThan(300);
  });

  it.each(LINKED_DOCS.map((p) => [rel(p), p]))('every relative link in %s leads to an existing file and heading', (_name, path) => {
    const broken: string[] = [];
    for (const target of relativeLinks(readFileSync(path, 'utf8'))) {
      const [file, fragment] = target.split('#') as [string, string | undefined];
      const destination = file === '' ? path : resolve(dirname(path), decodeURI(file));
      if (!existsSync(destination)) {
        broken.push(`${target}: no such file`);
        continue;
      }
      if (fragment && destination.endsWith('.md') && !anchorsOf(readFileSync(destination, 'utf8')).has(decodeURIComponent(fragment))) {
        broken.push(`${target}: no heading #${fragment} in ${rel(destination)}`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('the link checker sees what GitHub renders (anchors, images, code left alone)', () => {
    const sample =
      '# Top\n## `POST /api/orders` — create an order\n## Top\n```sh\n[x](missing.md)\n```\n![shot](a.png) [b](b.md#c) <https://x.example> `[y](inline.md)`\n';
    expect([...anchorsOf(sample)]).toEqual(['top', 'post-apiorders--create-an-order', 'top-1']);
    expect(relativeLinks(sample)).toEqual(['a.png', 'b.md#c']);
    expect(forbiddenIn('see issue 5 and DESIGN A4; figures of this session; ../shared/bench')).toHaveLength(4);
    expect(forbiddenIn('the console session cookie; checkout.session.completed; every session ends; SESSION_SECRET; not in a public issue')).toEqual([]);
  });
});

describe('served API documentation', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext('sqlite');
  });
  afterAll(() => ctx.close());

  it('GET /openapi.json has no internal references', async () => {
    const res = await request(ctx.app).get('/openapi.json').expect(200);
    expect(forbiddenIn(JSON.stringify(res.body, null, 1))).toEqual([]);
  });

  it.each(['en', 'zh-CN'])('the /docs page (%s) has no internal references', async (lang) => {
    const res = await request(ctx.app).get(`/docs?lang=${lang}`).expect(200);
    expect(forbiddenIn(res.text)).toEqual([]);
  });
});
