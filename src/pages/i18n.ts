import type { Request, Response } from 'express';
import { readCookie } from '../shared/cookies.ts';
import { consoleEn, consoleZhCN } from './i18n-console.ts';

export const LANGS = ['en', 'zh-CN'] as const;
export type Lang = (typeof LANGS)[number];

const en = {
  app_name: 'Payment callback service',
  lang_switch: '中文',
  payment_success: 'Payment successful',
  payment_failed: 'Payment failed',
  payment_pending: 'Payment pending',
  order_closed: 'Order closed',
  request_rejected: 'Payment result could not be verified',
  order_no: 'Order number',
  amount: 'Amount',
  currency: 'Currency',
  status: 'Status',
  subject: 'Subject',
  return_to_merchant: 'Return to merchant',
  status_pending: 'Pending',
  status_paid: 'Paid',
  status_failed: 'Failed',
  status_closed: 'Closed',
  status_refunded: 'Refunded',
  home_title: 'Sandbox: create a demo order',
  home_intro:
    'Create an order, then pay it in the built-in sandbox gateway. The sandbox signs a real notification that goes through the same verification and transaction as a gateway’s.',
  create_order: 'Create order',
  checkout_title: 'Sandbox checkout',
  checkout_intro: 'This is the sandbox gateway. Choose the outcome the gateway reports.',
  pay: 'Pay',
  fail: 'Simulate failure',
  checkout_done: 'This order is no longer awaiting payment.',
  pay_lose_notification: 'Pay, but lose the notification',
  pay_lose_notification_hint:
    'The last button pays at the sandbox gateway but never tells the service, as when a gateway loses a callback: watch the service find the payment by asking the gateway.',
  notification_lost:
    'Paid at the sandbox gateway, and its notification was lost on purpose. The service asks the gateway about pending orders after {seconds} s and will find the payment; this page refreshes by itself.',
  notification_recovered: 'The lost payment was found by asking the gateway: the order is paid. Its timeline in the console shows the query.',
  view_result: 'View result',
  new_order: 'Create another order',
  error_title: 'Error',
  error_code: 'Code',
  error_home: 'Go to the home page',
  error_text_validation_failed: 'The request is not valid.',
  error_text_unauthorized: 'This needs authentication.',
  error_text_bad_signature: 'The signature could not be verified.',
  error_text_forbidden: 'This request is not allowed. If it came from a form, reload the page and try again.',
  error_text_not_found: 'There is no page at this address.',
  error_text_order_exists: 'An order with this number already exists with other details.',
  error_text_invalid_state: 'The order is not in a state that allows this.',
  error_text_replayed: 'This request was used before, or its time is outside the accepted window.',
  error_text_amount_mismatch: 'The amount or currency does not match the order.',
  error_text_payload_too_large: 'The request is too large.',
  error_text_unsupported_media_type: 'The request’s content type or character set is not supported; send UTF-8.',
  error_text_rate_limited: 'Too many requests. Wait a moment and try again.',
  error_text_internal_error: 'Something went wrong on our side.',
  error_text_unavailable: 'The service is temporarily unavailable; trying again is safe.',
  sandbox_not_payable:
    'Order {order_no} cannot be paid in the sandbox: the sandbox pays only orders created for it (payment method "sandbox"), such as those made on the home page.',
  api_reference: 'API reference',
  home_more: 'Where next',
  home_console_hint: 'Orders, callbacks and merchant notifications at a glance (sign in with ADMIN_PASSWORD).',
  home_docs_hint: 'Every endpoint of the HTTP API with its parameters and answers.',
  ...consoleEn,
};

const zhCN: typeof en = {
  app_name: '支付回调服务',
  lang_switch: 'English',
  payment_success: '支付成功',
  payment_failed: '支付失败',
  payment_pending: '支付处理中',
  order_closed: '订单已关闭',
  request_rejected: '支付结果无法验证',
  order_no: '订单号',
  amount: '金额',
  currency: '币种',
  status: '状态',
  subject: '商品',
  return_to_merchant: '返回商户',
  status_pending: '待支付',
  status_paid: '已支付',
  status_failed: '支付失败',
  status_closed: '已关闭',
  status_refunded: '已退款',
  home_title: '沙箱：创建演示订单',
  home_intro: '创建订单后，在内置沙箱网关中完成支付。沙箱会签名一条真实通知，经过与网关通知相同的验签和事务处理。',
  create_order: '创建订单',
  checkout_title: '沙箱收银台',
  checkout_intro: '这是沙箱网关，请选择网关要报告的结果。',
  pay: '支付',
  fail: '模拟失败',
  checkout_done: '该订单已不在待支付状态。',
  pay_lose_notification: '支付，但丢失通知',
  pay_lose_notification_hint: '最后一个按钮在沙箱网关完成支付，但不通知本服务，就像网关丢失了回调：看看服务如何通过主动查询网关找回这笔支付。',
  notification_lost: '已在沙箱网关支付，且通知被故意丢弃。服务会在 {seconds} 秒后向网关查询待支付订单并找回这笔支付；本页面会自动刷新。',
  notification_recovered: '通过主动查询网关找回了丢失的支付：订单已支付。控制台中该订单的时间线显示了这次查询。',
  view_result: '查看结果',
  new_order: '再创建一个订单',
  error_title: '错误',
  error_code: '错误码',
  error_home: '返回首页',
  error_text_validation_failed: '请求无效。',
  error_text_unauthorized: '需要认证。',
  error_text_bad_signature: '签名校验失败。',
  error_text_forbidden: '不允许此请求。如果来自表单，请刷新页面后重试。',
  error_text_not_found: '该地址没有页面。',
  error_text_order_exists: '已存在该订单号的订单，且内容不同。',
  error_text_invalid_state: '订单当前状态不允许此操作。',
  error_text_replayed: '该请求已被使用过，或其时间不在允许的范围内。',
  error_text_amount_mismatch: '金额或币种与订单不符。',
  error_text_payload_too_large: '请求过大。',
  error_text_unsupported_media_type: '不支持该请求的内容类型或字符集，请使用 UTF-8。',
  error_text_rate_limited: '请求过多，请稍后再试。',
  error_text_internal_error: '服务内部出错。',
  error_text_unavailable: '服务暂时不可用，可以放心重试。',
  sandbox_not_payable: '订单 {order_no} 不能在沙箱中支付：沙箱只支付为它创建的订单（支付方式为 "sandbox"），例如在首页创建的订单。',
  api_reference: 'API 参考',
  home_more: '更多',
  home_console_hint: '一览订单、回调和商户通知（使用 ADMIN_PASSWORD 登录）。',
  home_docs_hint: 'HTTP API 的全部接口及其参数和响应。',
  ...consoleZhCN,
};

export type Messages = typeof en;
const MESSAGES: Record<Lang, Messages> = { en, 'zh-CN': zhCN };
const COOKIE = 'lang';

function normalize(value: unknown): Lang | undefined {
  if (typeof value !== 'string') return undefined;
  const lower = value.toLowerCase();
  if (lower === 'en' || lower.startsWith('en-')) return 'en';
  if (lower === 'zh' || lower.startsWith('zh-')) return 'zh-CN';
  return undefined;
}

/** `?lang=` (remembered in a cookie), then the cookie, then Accept-Language; English by default. */
export function resolveLang(req: Request, res: Response): Lang {
  const fromQuery = normalize(req.query.lang);
  if (fromQuery) {
    res.cookie(COOKIE, fromQuery, { maxAge: 365 * 86_400_000, sameSite: 'lax', httpOnly: true, secure: req.secure, path: '/' });
    return fromQuery;
  }
  const fromCookie = normalize(readCookie(req.headers.cookie, COOKIE));
  if (fromCookie) return fromCookie;
  return normalize(req.acceptsLanguages('en', 'zh-CN', 'zh') || undefined) ?? 'en';
}

export function messages(lang: Lang): Messages {
  return MESSAGES[lang];
}

export const otherLang = (lang: Lang): Lang => (lang === 'en' ? 'zh-CN' : 'en');

/**
 * The same page in language `lang`: a query-only link (`?…&lang=zh-CN`), which the browser resolves against
 * the page it is on. Never built from the request path: `/.//evil.com` would come out as `//evil.com`, a link
 * to another site.
 */
export function languageSwitchUrl(req: Request, lang: Lang, drop: readonly string[] = []): string {
  const at = req.originalUrl.indexOf('?');
  const query = new URLSearchParams(at === -1 ? '' : req.originalUrl.slice(at + 1));
  for (const key of drop) query.delete(key);
  query.set('lang', lang);
  return `?${query.toString()}`;
}

/** Locals every page template gets: `lang`, `t` and the link to the same page in the other language. */
export function pageLocals(req: Request, res: Response) {
  const lang = resolveLang(req, res);
  return { lang, t: messages(lang), switchUrl: languageSwitchUrl(req, otherLang(lang)) };
}
