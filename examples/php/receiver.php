<?php
// Merchant notification receiver for the payment callback service (PHP standard library only).
//
//   NOTIFY_SECRET=whsec_... php -S 127.0.0.1:4001 examples/php/receiver.php
//
// Answers 200 "success" to a notification that passes every check below, 4xx to anything else.
// Under php -S (or PHP-FPM) each request starts afresh, so the event ids already processed live in a
// file (SEEN_EVENTS_FILE). See examples/README.md for the algorithm and the environment variables.
declare(strict_types=1);

const TOLERANCE_SECONDS = 300;
const MAX_BODY_BYTES = 65536;
const SIGN_TYPES = ['MD5', 'HMAC-SHA256'];

final class Rejected extends Exception
{
    public $status;

    public function __construct(int $status, string $reason)
    {
        parent::__construct($reason);
        $this->status = $status;
    }
}

function logLine(string $line): void
{
    file_put_contents('php://stderr', $line . "\n");
}

function answer(int $status, string $text): void
{
    http_response_code($status);
    header('Content-Type: text/plain; charset=utf-8');
    echo $text;
}

/** NOTIFY_SECRET (whsec_<base64>), its decoded Standard Webhooks key, the pinned sign type and the seen-events file. */
function settings(): array
{
    $secret = (string) getenv('NOTIFY_SECRET');
    $key = strncmp($secret, 'whsec_', 6) === 0 ? base64_decode(substr($secret, 6), true) : false;
    if ($key === false || $key === '') {
        throw new RuntimeException("NOTIFY_SECRET must be set to the service's NOTIFY_SECRET (whsec_<base64>)");
    }
    $pinned = (string) getenv('NOTIFY_SIGN_TYPE');
    if ($pinned !== '' && !in_array($pinned, SIGN_TYPES, true)) {
        throw new RuntimeException('NOTIFY_SIGN_TYPE must be MD5 or HMAC-SHA256 when set');
    }
    $seenFile = (string) getenv('SEEN_EVENTS_FILE');
    if ($seenFile === '') {
        $seenFile = sys_get_temp_dir() . DIRECTORY_SEPARATOR . 'payment-notify-seen-events.txt';
    }
    return ['secret' => $secret, 'webhook_key' => $key, 'pinned' => $pinned, 'seen_file' => $seenFile];
}

function checkWindow(string $what, int $seconds): void
{
    if (abs(time() - $seconds) > TOLERANCE_SECONDS) {
        throw new Rejected(401, "$what is more than " . TOLERANCE_SECONDS . " s away from this server's clock");
    }
}

/** Standard Webhooks: v1,base64(hmac_sha256(base64decode(secret without whsec_), "id.timestamp.body")). */
function verifyWebhookSignature(array $settings, string $raw): string
{
    $id = (string) ($_SERVER['HTTP_WEBHOOK_ID'] ?? '');
    $timestamp = (string) ($_SERVER['HTTP_WEBHOOK_TIMESTAMP'] ?? '');
    $signatures = (string) ($_SERVER['HTTP_WEBHOOK_SIGNATURE'] ?? '');
    if ($id === '' || $timestamp === '' || $signatures === '') {
        throw new Rejected(400, 'missing webhook-id, webhook-timestamp or webhook-signature header');
    }
    if (!preg_match('/^[0-9]{1,12}$/D', $timestamp)) {
        throw new Rejected(400, 'webhook-timestamp is not unix seconds');
    }
    $expected = base64_encode(hash_hmac('sha256', "$id.$timestamp.$raw", $settings['webhook_key'], true));
    // The header may carry several space-separated signatures (key rotation): any v1 match counts.
    $matched = false;
    foreach (explode(' ', $signatures) as $candidate) {
        $parts = explode(',', $candidate, 2);
        if (count($parts) === 2 && $parts[0] === 'v1' && hash_equals($expected, $parts[1])) {
            $matched = true;
        }
    }
    if (!$matched) {
        throw new Rejected(401, 'webhook-signature does not match');
    }
    checkWindow('webhook-timestamp', (int) $timestamp);
    return $id;
}

/**
 * The body's fields. Objects decode as stdClass (so a JSON array is told apart from an object), big
 * integers as their digits: every integer then prints exactly as the JSON text had it.
 */
function parseBody(string $raw): array
{
    $body = json_decode($raw, false, 512, JSON_BIGINT_AS_STRING);
    if (json_last_error() !== JSON_ERROR_NONE) {
        throw new Rejected(400, 'body is not JSON: ' . json_last_error_msg());
    }
    if (!($body instanceof stdClass)) {
        throw new Rejected(400, 'body is not a JSON object');
    }
    return get_object_vars($body);
}

/**
 * A field as the service signed it: strings as they are, integers in decimal, true/false. The service
 * sends integers only (seq, timestamp); a float has no exact text in PHP, so it is refused, not guessed.
 */
function fieldText(string $name, $value): string
{
    if (is_string($value)) {
        return $value;
    }
    if (is_int($value)) {
        return (string) $value;
    }
    if (is_bool($value)) {
        return $value ? 'true' : 'false';
    }
    throw new Rejected(400, "field $name is not a string, integer, boolean or null: not something the service signs");
}

/** A5/A7: every field but sign that is not null or empty, sorted by name in byte order, k=v&...&key=<secret>. */
function expectedSign(array $body, string $signType, string $secret): string
{
    unset($body['sign']);
    $pairs = [];
    ksort($body, SORT_STRING); // byte order (strcmp)
    foreach ($body as $name => $value) {
        if ($value === null || $value === '') {
            continue;
        }
        $pairs[] = $name . '=' . fieldText((string) $name, $value);
    }
    $text = implode('&', $pairs) . '&key=' . $secret;
    return strtoupper($signType === 'MD5' ? md5($text) : hash_hmac('sha256', $text, $secret));
}

function verifySign(array $settings, array $body): void
{
    $signType = $body['sign_type'] ?? null;
    if ($signType === null || $signType === '') {
        $signType = 'MD5';
    }
    if (!in_array($signType, SIGN_TYPES, true)) {
        throw new Rejected(400, 'sign_type is not MD5 or HMAC-SHA256');
    }
    if ($settings['pinned'] !== '' && $signType !== $settings['pinned']) {
        throw new Rejected(401, "sign_type $signType is not the configured {$settings['pinned']}");
    }
    $presented = $body['sign'] ?? null;
    if (!is_string($presented) || $presented === '') {
        throw new Rejected(401, 'sign is missing');
    }
    if (!hash_equals(expectedSign($body, $signType, $settings['secret']), strtoupper($presented))) {
        throw new Rejected(401, 'sign does not match');
    }
}

/** Processes the event unless its event_id was processed before (file locked meanwhile); true when it ran now. */
function processOnce(array $settings, array $body): bool
{
    $file = fopen($settings['seen_file'], 'c+');
    if ($file === false || !flock($file, LOCK_EX)) {
        throw new RuntimeException("cannot open and lock {$settings['seen_file']}");
    }
    try {
        $seen = explode("\n", (string) stream_get_contents($file));
        if (in_array($body['event_id'], $seen, true)) {
            return false;
        }
        // Your business logic goes here: look the order up, check amount and currency, mark it paid.
        logLine(sprintf('processed %s order_no=%s status=%s amount=%s %s event_id=%s', $body['type'] ?? '', $body['order_no'] ?? '', $body['status'] ?? '', $body['amount'] ?? '', $body['currency'] ?? '', $body['event_id']));
        fseek($file, 0, SEEK_END);
        fwrite($file, $body['event_id'] . "\n");
        fflush($file);
        return true;
    } finally {
        flock($file, LOCK_UN);
        fclose($file);
    }
}

function handleNotification(array $settings): void
{
    if (($_SERVER['REQUEST_METHOD'] ?? '') !== 'POST') {
        header('Allow: POST');
        throw new Rejected(405, 'POST only');
    }
    $raw = (string) file_get_contents('php://input', false, null, 0, MAX_BODY_BYTES + 1);
    if (strlen($raw) > MAX_BODY_BYTES) {
        throw new Rejected(413, 'body is too large');
    }
    $webhookId = verifyWebhookSignature($settings, $raw);
    $body = parseBody($raw);
    $eventId = $body['event_id'] ?? null;
    if (!is_string($eventId) || !preg_match('/^[A-Za-z0-9_.:-]{1,128}$/D', $eventId)) {
        throw new Rejected(400, 'event_id is missing or malformed');
    }
    if ($webhookId !== $eventId) {
        throw new Rejected(400, "webhook-id is not the body's event_id");
    }
    verifySign($settings, $body);
    $timestamp = $body['timestamp'] ?? null;
    if (!is_int($timestamp) || $timestamp < 0) {
        throw new Rejected(400, 'timestamp is missing or not unix seconds');
    }
    checkWindow('timestamp', $timestamp);
    if (!processOnce($settings, $body)) {
        logLine("duplicate event_id=$eventId: already processed, answering success again");
    }
}

try {
    handleNotification(settings());
    answer(200, 'success');
} catch (Rejected $e) {
    logLine('rejected: ' . $e->getMessage());
    answer($e->status, 'fail: ' . $e->getMessage());
} catch (Throwable $e) {
    // A failure of ours (configuration, the seen-events file): 500, so the service retries later.
    logLine('error: ' . $e->getMessage());
    answer(500, 'fail: internal error');
}
