// Verifies a webhook delivery of ses-webhook (Standard Webhooks signatures), Node.js 20 with
// `node:crypto` only.
//
// In a receiver, call `verifyWebhook` with the secret, the three `webhook-*` headers and the
// body exactly as received (a Buffer, before any JSON parsing), and answer 2xx only when it
// returns:
//
//   const envelope = verifyWebhook(secret, {
//     id: req.headers["webhook-id"],
//     timestamp: req.headers["webhook-timestamp"],
//     signature: req.headers["webhook-signature"],
//   }, rawBody);
//
// Run as a program (`node verify-webhook.mjs`), it verifies one delivery: the secret from
// WEBHOOK_SECRET, the headers from WEBHOOK_ID, WEBHOOK_TIMESTAMP and WEBHOOK_SIGNATURE, the body
// from standard input. It prints the envelope's id and type and exits 0 when the delivery is
// genuine, else prints why and exits 1. See docs/delivery.md.

import { createHmac, timingSafeEqual } from "node:crypto";
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";

const SECRET_PREFIX = "whsec_";
// A delivery whose timestamp is further than this from now (either way) is refused: a captured
// request cannot be replayed later.
export const TOLERANCE_SECS = 5 * 60;

/** The delivery is not genuine (or not fresh); the message says why. */
export class VerificationError extends Error {}

/**
 * Checks one delivery and returns its envelope when genuine; throws VerificationError otherwise.
 * @param {string} secret the sink's `whsec_...` secret
 * @param {{id?: string, timestamp?: string, signature?: string}} headers the values of the
 *   `webhook-id`, `webhook-timestamp` and `webhook-signature` headers
 * @param {Buffer} body the request body as received
 */
export function verifyWebhook(secret, headers, body, { now = Date.now() / 1000, toleranceSecs = TOLERANCE_SECS } = {}) {
  if (!secret.startsWith(SECRET_PREFIX)) {
    throw new VerificationError("the secret does not start with whsec_");
  }
  const encodedKey = secret.slice(SECRET_PREFIX.length);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(encodedKey) || encodedKey.length % 4 !== 0) {
    throw new VerificationError("the secret is not whsec_ and base64");
  }
  const key = Buffer.from(encodedKey, "base64");
  const { id, timestamp, signature } = headers;
  if (!id || !timestamp || !signature) {
    throw new VerificationError("a webhook-id, webhook-timestamp or webhook-signature header is missing");
  }
  if (!/^[0-9]+$/.test(timestamp)) {
    throw new VerificationError(`webhook-timestamp is not a number of seconds: ${JSON.stringify(timestamp)}`);
  }
  if (Math.abs(now - Number(timestamp)) > toleranceSecs) {
    throw new VerificationError(
      `webhook-timestamp ${timestamp} is more than ${toleranceSecs} seconds from now (${Math.floor(now)})`,
    );
  }

  // The signed content: id, timestamp (as sent) and body, joined by dots.
  const expected = createHmac("sha256", key)
    .update(`${id}.${timestamp}.`)
    .update(body)
    .digest("base64");
  const expectedBytes = Buffer.from(expected);
  // Several signatures may be sent, separated by spaces (while a secret is being rotated);
  // one valid `v1` signature is enough.
  let genuine = false;
  for (const candidate of signature.split(" ")) {
    const comma = candidate.indexOf(",");
    if (comma < 0 || candidate.slice(0, comma) !== "v1") continue;
    const given = Buffer.from(candidate.slice(comma + 1));
    // timingSafeEqual needs equal lengths; every genuine signature has the expected length.
    if (given.length === expectedBytes.length && timingSafeEqual(given, expectedBytes)) {
      genuine = true;
    }
  }
  if (!genuine) {
    throw new VerificationError("no signature matches (wrong secret, or the body or headers were changed)");
  }

  let envelope;
  try {
    envelope = JSON.parse(body.toString("utf8"));
  } catch (e) {
    throw new VerificationError(`the body is not JSON: ${e.message}`);
  }
  if (envelope === null || typeof envelope !== "object" || envelope.id !== id) {
    throw new VerificationError("the envelope's id is not the webhook-id");
  }
  return envelope;
}

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const env = process.env;
  try {
    const envelope = verifyWebhook(
      env.WEBHOOK_SECRET ?? "",
      { id: env.WEBHOOK_ID, timestamp: env.WEBHOOK_TIMESTAMP, signature: env.WEBHOOK_SIGNATURE },
      Buffer.concat(chunks),
    );
    console.log(`${envelope.id} ${envelope.type}`);
    return 0;
  } catch (e) {
    if (!(e instanceof VerificationError)) throw e;
    console.error(`invalid: ${e.message}`);
    return 1;
  }
}

// Run as a program, not imported.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main();
}
