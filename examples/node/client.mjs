// Creates an order on the payment callback service, queries it and prints it as JSON (Node built-ins only).
//
//   BASE_URL=http://localhost:3000 API_KEY=... [ORDER_NO=...] [AMOUNT=9.99] [NOTIFY_URL=...] node examples/node/client.mjs
//
// Exits non-zero with a message on standard error when anything fails. See examples/README.md.
const BASE_URL = (process.env.BASE_URL || 'http://localhost:3000').replace(/\/+$/, '');
const API_KEY = process.env.API_KEY || '';

function fail(message) {
  console.error(`error: ${message}`);
  process.exit(1);
}

/** One API call; returns the HTTP status and the envelope's data, or exits with the service's code and message. */
async function call(method, path, payload) {
  const headers = { 'x-api-key': API_KEY, accept: 'application/json' };
  if (payload !== undefined) headers['content-type'] = 'application/json';
  let response;
  let text;
  try {
    // A redirect is an error: following it would send the API key to wherever it points.
    response = await fetch(BASE_URL + path, {
      method,
      headers,
      body: payload === undefined ? undefined : JSON.stringify(payload),
      redirect: 'error',
      signal: AbortSignal.timeout(15_000),
    });
    text = await response.text();
  } catch (err) {
    fail(`${method} ${BASE_URL}${path}: ${err.cause?.message ?? err.message}`);
  }
  let envelope;
  try {
    envelope = JSON.parse(text);
  } catch {
    fail(`${method} ${path}: HTTP ${response.status} without a JSON body: ${JSON.stringify(text.slice(0, 200))}`);
  }
  if (!response.ok || envelope?.success !== true) fail(`${method} ${path}: HTTP ${response.status} ${envelope?.code}: ${envelope?.message}`);
  return { status: response.status, data: envelope.data };
}

if (!API_KEY) fail('API_KEY is not set (an API key of the service: API_KEYS, or npm run apikey -- create <name>)');
const order = { amount: process.env.AMOUNT || '9.99', subject: 'Example order' };
if (process.env.ORDER_NO) order.order_no = process.env.ORDER_NO;
if (process.env.NOTIFY_URL) order.notify_url = process.env.NOTIFY_URL;

const created = await call('POST', '/api/orders', order);
console.error(`${created.status === 201 ? 'created' : 'found existing'} order ${created.data.order_no}`);
const queried = await call('GET', `/api/orders/${encodeURIComponent(created.data.order_no)}`);
console.log(JSON.stringify(queried.data, null, 2));
