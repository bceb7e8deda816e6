import { z } from 'zod';

/** Documentation attached to zod schemas: `id` makes a schema a named component (`#/components/schemas/<id>`). */
export interface DocMeta {
  id?: string;
  title?: string;
  description?: string;
  examples?: unknown[];
  format?: string;
  [key: string]: unknown;
}

/**
 * The OpenAPI document's own registry, not zod's global one: the schemas the routes validate with stay
 * untouched, and only what is registered here becomes a component or gains a description.
 */
export const docsRegistry = z.registry<DocMeta>();

/** Registers `meta` for `schema` (the same instance the routes use) and returns the schema. */
export function doc<T extends z.ZodType>(schema: T, meta: DocMeta): T {
  docsRegistry.add(schema, { ...docsRegistry.get(schema), ...meta });
  return schema;
}

export type JsonSchema = Record<string, unknown>;

/** `#/components/schemas/<id>`: where registry ids live in the document. */
export const schemaRef = (id: string) => `#/components/schemas/${id}`;

/** Drops the keys that make sense at the root of a standalone JSON Schema but not inside an OpenAPI document. */
export function embed(schema: JsonSchema): JsonSchema {
  const { $schema: _schema, $id: _id, ...rest } = schema;
  return rest;
}

const COMMON = { io: 'input', unrepresentable: 'any', metadata: docsRegistry, uri: schemaRef } as const;

/** One zod schema as JSON Schema 2020-12 (OpenAPI 3.1's dialect), inlined, request side (`io: 'input'`). */
export function jsonSchemaOf(schema: z.ZodType): JsonSchema {
  return embed(z.toJSONSchema(schema, { ...COMMON, reused: 'inline', override: enrich }) as JsonSchema);
}

/** Every schema registered with an `id`, as `components.schemas`; references between them become `$ref`s. */
export function componentSchemas(): Record<string, JsonSchema> {
  const { schemas } = z.toJSONSchema(docsRegistry, { ...COMMON, override: enrich });
  return Object.fromEntries(Object.entries(schemas).map(([id, schema]) => [id, embed(schema as JsonSchema)]));
}

/**
 * Two gaps of the input side filled in. zod drops the `examples` of transforming schemas there, and ours
 * are written as inputs. And a pre-check with no JSON Schema form (metadata's key guard) leaves `{}`:
 * when it pipes into a representable schema, that output describes the field better than nothing.
 */
function enrich(ctx: { zodSchema: unknown; jsonSchema: JsonSchema }): void {
  const examples = docsRegistry.get(ctx.zodSchema as z.ZodType)?.examples;
  if (examples && ctx.jsonSchema.examples === undefined) ctx.jsonSchema.examples = examples;
  const def = (ctx.zodSchema as { _zod?: { def?: { type?: string; out?: z.ZodType } } })._zod?.def;
  if (def?.type !== 'pipe' || !def.out || Object.keys(ctx.jsonSchema).some((k) => k !== 'description' && k !== 'examples')) return;
  const output = embed(z.toJSONSchema(def.out, { io: 'output', unrepresentable: 'any', metadata: docsRegistry }) as JsonSchema);
  Object.assign(ctx.jsonSchema, output, ctx.jsonSchema);
}
