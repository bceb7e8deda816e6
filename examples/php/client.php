<?php
// Creates an order on the payment callback service, queries it and prints it as JSON (PHP standard library
// only: file_get_contents with a stream context, so php-cli alone suffices; HTTPS needs the openssl extension).
//
//   BASE_URL=http://localhost:3000 API_KEY=... [ORDER_NO=...] [AMOUNT=9.99] [NOTIFY_URL=...] php examples/php/client.php
//
// Exits non-zero with a message on standard error when anything fails. See examples/README.md.
declare(strict_types=1);

function fail(string $message): void
{
    fwrite(STDERR, "error: $message\n");
    exit(1);
}

/** One API call; returns [HTTP status, the envelope's data] or exits with the service's code and message. */
function call(string $baseUrl, string $apiKey, string $method, string $path, ?array $payload = null): array
{
    $headers = ["X-API-Key: $apiKey", 'Accept: application/json'];
    $options = [
        'method' => $method,
        'ignore_errors' => true, // read the body of a 4xx/5xx too: it says why
        'follow_location' => 0, // a redirect is an error: following it would send the API key to wherever it points
        'timeout' => 15,
    ];
    if ($payload !== null) {
        $headers[] = 'Content-Type: application/json';
        $options['content'] = json_encode($payload, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
    }
    $options['header'] = implode("\r\n", $headers);
    $text = @file_get_contents($baseUrl . $path, false, stream_context_create(['http' => $options]));
    if ($text === false) {
        fail("$method $baseUrl$path: " . (error_get_last()['message'] ?? 'request failed'));
    }
    // The status line is the first response header (PHP 8.4+ also offers http_get_last_response_headers()).
    $responseHeaders = function_exists('http_get_last_response_headers') ? http_get_last_response_headers() : $http_response_header;
    $status = preg_match('{^HTTP/\S+ (\d{3})}', $responseHeaders[0] ?? '', $m) ? (int) $m[1] : 0;
    // Objects stay objects, so an empty JSON object prints as {} again, not [].
    $envelope = json_decode($text);
    if (json_last_error() !== JSON_ERROR_NONE) {
        fail("$method $path: HTTP $status without a JSON body: " . substr($text, 0, 200));
    }
    if ($status < 200 || $status > 299 || !($envelope instanceof stdClass) || ($envelope->success ?? null) !== true) {
        $code = $envelope instanceof stdClass ? ($envelope->code ?? '') : '';
        $message = $envelope instanceof stdClass ? ($envelope->message ?? '') : '';
        fail("$method $path: HTTP $status $code: $message");
    }
    return [$status, $envelope->data ?? null];
}

$baseUrl = rtrim((string) (getenv('BASE_URL') ?: 'http://localhost:3000'), '/');
$apiKey = (string) getenv('API_KEY');
if ($apiKey === '') {
    fail('API_KEY is not set (an API key of the service: API_KEYS, or npm run apikey -- create <name>)');
}
$order = ['amount' => (string) (getenv('AMOUNT') ?: '9.99'), 'subject' => 'Example order'];
if ((string) getenv('ORDER_NO') !== '') {
    $order['order_no'] = (string) getenv('ORDER_NO');
}
if ((string) getenv('NOTIFY_URL') !== '') {
    $order['notify_url'] = (string) getenv('NOTIFY_URL');
}

[$status, $created] = call($baseUrl, $apiKey, 'POST', '/api/orders', $order);
fwrite(STDERR, ($status === 201 ? 'created' : 'found existing') . " order {$created->order_no}\n");
[, $queried] = call($baseUrl, $apiKey, 'GET', '/api/orders/' . rawurlencode($created->order_no));
echo json_encode($queried, JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE), "\n";
