import { expect } from 'vitest';
import type { z } from 'zod';

export type Json = Record<string, unknown>;

/** RFC 6901 JSON pointer inside the document (`#/components/schemas/Order`). */
export function resolve(doc: Json, ref: string): unknown {
  expect(ref.startsWith('#/'), ref).toBe(true);
  return ref
    .slice(2)
    .split('/')
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce<unknown>((node, key) => (node && typeof node === 'object' ? (node as Json)[key] : undefined), doc);
}

export function collectRefs(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) node.forEach((n) => collectRefs(n, out));
  else if (node && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      if (key === '$ref' && typeof value === 'string') out.push(value);
      else collectRefs(value, out);
    }
  }
  return out;
}

/**
 * The value parses with the documented schema (so every required field is there, typed as documented) and
 * has no field the schema lacks: the document cannot drift from what the code answers.
 */
export function expectShape(schema: z.ZodObject, value: unknown, what: string): void {
  const parsed = schema.safeParse(value);
  expect(parsed.success, `${what}: ${JSON.stringify(parsed.error?.issues)}`).toBe(true);
  const undocumented = Object.keys(value as object).filter((key) => !(key in schema.shape));
  expect(undocumented, what).toEqual([]);
}

/** The codes a shared error response (`{$ref: '#/components/responses/Error409'}`) documents. */
export function codesOf(doc: Json, response: Json): string[] {
  const shared = resolve(doc, response.$ref as string) as Json;
  return Object.keys(((shared.content as Json)['application/json'] as Json).examples as Json);
}
