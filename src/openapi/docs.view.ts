import type { OpenApiDocument } from './openapi.document.ts';
import type { JsonSchema } from './registry.ts';

/** The OpenAPI document flattened into what views/docs.ejs renders: no logic in the template. */

/** A type as text pieces; a piece with `ref` links to that component schema. */
export type TypePart = { text: string; ref?: string };

export interface FieldRow {
  name: string;
  location?: string;
  type: TypePart[];
  required: boolean;
  constraints: string[];
  description: string;
}

const refName = (ref: string) => ref.slice(ref.lastIndexOf('/') + 1);
const sep = (text: string): TypePart => ({ text });

export function typeParts(schema: JsonSchema | undefined): TypePart[] {
  if (!schema || Object.keys(schema).length === 0) return [{ text: 'any' }];
  if (typeof schema.$ref === 'string') return [{ text: refName(schema.$ref), ref: refName(schema.$ref) }];
  const alternatives = (schema.anyOf ?? schema.oneOf) as JsonSchema[] | undefined;
  if (alternatives) return alternatives.flatMap((alt, i) => [...(i > 0 ? [sep(' | ')] : []), ...typeParts(alt)]);
  if (schema.const !== undefined) return [{ text: JSON.stringify(schema.const) }];
  if (Array.isArray(schema.enum)) return [{ text: schema.enum.map((v) => JSON.stringify(v)).join(' | ') }];
  const types = Array.isArray(schema.type) ? (schema.type as string[]) : [typeof schema.type === 'string' ? schema.type : 'any'];
  return types.flatMap((type, i) => {
    const lead = i > 0 ? [sep(' | ')] : [];
    if (type === 'array') return [...lead, ...typeParts(schema.items as JsonSchema), sep('[]')];
    if (type === 'object' && schema.additionalProperties && typeof schema.additionalProperties === 'object') {
      return [...lead, sep('object<string, '), ...typeParts(schema.additionalProperties as JsonSchema), sep('>')];
    }
    return [...lead, { text: type }];
  });
}

export function constraints(schema: JsonSchema | undefined): string[] {
  if (!schema) return [];
  const out: string[] = [];
  if (typeof schema.format === 'string') out.push(`format: ${schema.format}`);
  // A format says it better than its regex (zod's ISO date-time pattern is unreadable).
  if (typeof schema.pattern === 'string' && typeof schema.format !== 'string') out.push(`pattern: ${schema.pattern}`);
  if (typeof schema.minLength === 'number') out.push(`minLength: ${schema.minLength}`);
  if (typeof schema.maxLength === 'number') out.push(`maxLength: ${schema.maxLength}`);
  if (typeof schema.minimum === 'number') out.push(`minimum: ${schema.minimum}`);
  if (typeof schema.maximum === 'number') out.push(`maximum: ${schema.maximum}`);
  if (schema.default !== undefined) out.push(`default: ${JSON.stringify(schema.default)}`);
  if (Array.isArray(schema.examples) && schema.examples.length > 0) out.push(`example: ${JSON.stringify(schema.examples[0])}`);
  return out;
}

export function propertyRows(schema: JsonSchema | undefined): FieldRow[] {
  const properties = (schema?.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((schema?.required ?? []) as string[]);
  return Object.entries(properties).map(([name, prop]) => ({
    name,
    type: typeParts(prop),
    required: required.has(name),
    constraints: constraints(prop),
    description: typeof prop.description === 'string' ? prop.description : '',
  }));
}

/** Descriptions are CommonMark in OpenAPI; the page renders only `code` spans of it (the rest stays text). */
export type TextPart = { text: string; code: boolean };
export function richText(text: string): TextPart[] {
  return text
    .split('`')
    .map((part, i) => ({ text: part, code: i % 2 === 1 }))
    .filter((p) => p.text !== '');
}

const pretty = (value: unknown) => (value === undefined ? undefined : JSON.stringify(value, null, 2));

/**
 * Request bodies by content type. A body with the same schema as an earlier one is merged into it, and
 * one whose fields are a subset of an earlier one's (the form variant) is shown as a link only.
 */
function requestBodies(content: Record<string, { schema: JsonSchema }>, schemas: Record<string, JsonSchema>) {
  const bodies: Array<{ contentTypes: string[]; schema: JsonSchema; type: TypePart[]; rows: FieldRow[]; example?: string }> = [];
  for (const [contentType, { schema }] of Object.entries(content)) {
    const same = bodies.find((b) => JSON.stringify(b.schema) === JSON.stringify(schema));
    if (same) {
      same.contentTypes.push(contentType);
      continue;
    }
    const resolved = typeof schema.$ref === 'string' ? schemas[refName(schema.$ref)] : schema;
    const rows = propertyRows(resolved);
    const covered = rows.length > 0 && bodies.some((b) => rows.every((r) => b.rows.some((o) => o.name === r.name)));
    const example = pretty((resolved?.examples as unknown[] | undefined)?.[0]);
    bodies.push({ contentTypes: [contentType], schema, type: typeParts(schema), rows: covered ? [] : rows, example: covered ? undefined : example });
  }
  return bodies.map(({ schema: _schema, ...rest }) => rest);
}

export function buildDocsView(document: OpenApiDocument) {
  const schemas = document.components.schemas;
  const errorResponses = document.components.responses as Record<
    string,
    { description: string; content: Record<string, { examples: Record<string, { value: unknown }> }> }
  >;
  const exampleOf = (schema: JsonSchema | undefined) => {
    const target = typeof schema?.$ref === 'string' ? schemas[refName(schema.$ref)] : schema;
    return pretty((target?.examples as unknown[] | undefined)?.[0]);
  };

  const operations = Object.entries(document.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, op]) => {
      const body = op.requestBody as { content: Record<string, { schema: JsonSchema }> } | undefined;
      const responses = Object.entries(op.responses as Record<string, JsonSchema>).map(([status, response]) => {
        if (typeof response.$ref === 'string') {
          // Shared error responses: their codes are listed once in the Errors section, with the Error schema.
          const shared = errorResponses[refName(response.$ref)]!;
          return { status, description: shared.description, type: [{ text: 'Error', ref: 'Error' }], example: undefined };
        }
        const [contentType, media] = Object.entries((response.content ?? {}) as Record<string, { schema: JsonSchema; example?: unknown }>)[0] ?? [];
        const example = typeof media?.example === 'string' ? media.example : exampleOf(media?.schema);
        return { status, description: response.description as string, contentType, type: media ? typeParts(media.schema) : [], example };
      });
      const security = (op.security ?? []) as Array<Record<string, string[]>>;
      return {
        id: op.operationId as string,
        method: method.toUpperCase(),
        path,
        tag: ((op.tags as string[] | undefined) ?? ['Other'])[0]!,
        summary: op.summary as string,
        description: (op.description as string | undefined) ?? '',
        auth: security.map((s) => Object.keys(s)[0] ?? 'none'),
        parameters: ((op.parameters ?? []) as JsonSchema[]).map(
          (p): FieldRow => ({
            name: p.name as string,
            location: p.in as string,
            type: typeParts(p.schema as JsonSchema),
            required: p.required === true,
            constraints: constraints(p.schema as JsonSchema),
            description: (p.description as string | undefined) ?? '',
          }),
        ),
        bodies: requestBodies(body?.content ?? {}, schemas),
        responses,
      };
    }),
  );

  const tags = (document.tags as Array<{ name: string; description: string }>).map((tag) => ({
    ...tag,
    operations: operations.filter((op) => op.tag === tag.name),
  }));

  return {
    info: document.info as { title: string; version: string; summary: string; description: string },
    openapi: document.openapi,
    tags,
    securitySchemes: Object.entries(document.components.securitySchemes).map(([name, s]) => ({
      name,
      kind: s.type === 'apiKey' ? `${s.in as string} ${s.name as string}` : `Authorization: ${String(s.scheme)}`,
      description: s.description as string,
    })),
    errors: Object.entries(errorResponses).map(([name, r]) => ({
      status: name.replace('Error', ''),
      codes: Object.keys(r.content['application/json']!.examples),
    })),
    schemas: Object.entries(schemas).map(([name, schema]) => ({
      name,
      description: (schema.description as string | undefined) ?? '',
      type: schema.properties ? [{ text: 'object' }] : typeParts(schema),
      rows: propertyRows(schema),
      example: pretty((schema.examples as unknown[] | undefined)?.[0]),
    })),
  };
}

export type DocsView = ReturnType<typeof buildDocsView>;
