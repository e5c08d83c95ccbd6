import { Webhook } from 'standardwebhooks'

export interface WebhookTransport {
  /** POSTs one event; resolves on a 2xx answer, rejects otherwise (the outbox retries). */
  send (id: string, body: string): Promise<void>
}

/** fetch says only "fetch failed"; the outbox row and the log should say why (refused, reset, DNS…). */
function withCause (err: unknown): Error {
  const { message, cause } = err as Error & { cause?: { message?: string } }
  return new Error(cause?.message ? `${message}: ${cause.message}` : message)
}

/** How long a receiver has to answer one delivery. */
const TIMEOUT_MS = 10_000

/**
 * Standard Webhooks (standardwebhooks.com): the body as queued, `webhook-id` the outbox row's id (the same
 * on every retry, so a receiver can de-duplicate), `webhook-timestamp` this attempt's time, and
 * `webhook-signature` v1 (HMAC-SHA256 of id.timestamp.body under WEBHOOK_SECRET).
 */
export function webhookTransport (url: string, secret: string): WebhookTransport {
  const signer = new Webhook(secret)
  return {
    async send (id, body) {
      const at = new Date()
      const res = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'auth-api-webhooks',
          'webhook-id': id,
          'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
          'webhook-signature': signer.sign(id, at, body),
        },
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(TIMEOUT_MS),
      }).catch((err: unknown) => { throw withCause(err) })
      await res.arrayBuffer().catch(() => undefined)
      if (res.status < 200 || res.status >= 300) throw new Error(`the webhook receiver answered ${res.status}`)
    },
  }
}
