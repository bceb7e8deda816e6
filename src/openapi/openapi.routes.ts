import { Router } from 'express';
import { pageLocals, type Lang } from '../pages/i18n.ts';
import { buildDocsView, richText, type DocsView } from './docs.view.ts';
import { openApiDocument } from './openapi.document.ts';

const en = {
  docs_title: 'API reference',
  contents: 'Contents',
  openapi_json: 'OpenAPI document (JSON)',
  authentication: 'Authentication',
  errors: 'Errors',
  errors_intro: 'Failures use the error envelope; branch on its stable code.',
  status: 'Status',
  codes: 'Codes',
  scheme: 'Scheme',
  sent_as: 'Sent as',
  auth: 'Authentication',
  auth_none: 'none',
  parameters: 'Parameters',
  request_body: 'Request body',
  responses: 'Responses',
  name: 'Name',
  location: 'In',
  type: 'Type',
  required: 'required',
  optional: 'optional',
  rules: 'Rules',
  description: 'Description',
  example: 'Example',
  schemas: 'Schemas',
};

const zhCN: typeof en = {
  docs_title: 'API 参考',
  contents: '目录',
  openapi_json: 'OpenAPI 文档（JSON）',
  authentication: '认证',
  errors: '错误',
  errors_intro: '失败时返回错误信封，请根据其中稳定的 code 分支处理。',
  status: '状态码',
  codes: '错误码',
  scheme: '方案',
  sent_as: '传递方式',
  auth: '认证',
  auth_none: '无',
  parameters: '参数',
  request_body: '请求体',
  responses: '响应',
  name: '名称',
  location: '位置',
  type: '类型',
  required: '必填',
  optional: '可选',
  rules: '规则',
  description: '说明',
  example: '示例',
  schemas: '数据结构',
};

const DOCS_MESSAGES: Record<Lang, typeof en> = { en, 'zh-CN': zhCN };

/** Operation groups (the document's tags) as a Chinese reader sees them; anchors keep the English name. */
const ZH_TAGS: Record<string, { name: string; description: string }> = {
  Orders: { name: '订单', description: '创建、查询、列出和关闭订单' },
  Notifications: { name: '商户通知', description: '发往商户的异步通知' },
  'Heritage query API': { name: '兼容查询接口', description: '与 query_order.php 兼容的查询接口' },
  'Gateway callbacks': { name: '网关回调', description: '支付网关发来的签名通知' },
  Operations: { name: '运维', description: '存活、就绪检查和监控指标' },
};
const tagTexts = (lang: Lang) => (tag: { name: string; description: string }) => (lang === 'zh-CN' ? ZH_TAGS[tag.name] : undefined) ?? tag;

let view: DocsView | undefined;

/** `GET /openapi.json` (generated from the zod schemas) and `GET /docs`, its server-rendered reading. */
export function openApiRoutes(): Router {
  const router = Router();
  router.get('/openapi.json', (_req, res) => {
    res.setHeader('Cache-Control', 'no-cache');
    res.json(openApiDocument());
  });
  router.get('/docs', (req, res) => {
    const locals = pageLocals(req, res);
    view ??= buildDocsView(openApiDocument());
    res.render('docs', { ...locals, d: DOCS_MESSAGES[locals.lang], api: view, rich: richText, tagText: tagTexts(locals.lang) });
  });
  return router;
}
