import { randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { Webhook } from 'standardwebhooks'
import type { Test } from './helper.js'
import { freePort } from './live-server.js'

/** The body every webhook carries. */
export interface WebhookEvent {
  type: string
  timestamp: string
  data: { user: Record<string, unknown> & { id: string, email: string }, session?: { id: string } }
}

/** One request as the receiver saw it, and what it answered. */
export interface Delivery {
  id: string
  headers: Record<string, string>
  body: string
  /** what `Webhook.verify` returned, when the signature held */
  event: WebhookEvent | undefined
  /** why verification failed, when it did */
  error: string | undefined
  status: number
}

/** A Standard Webhooks secret as an operator would make one: whsec_ and base64 of 32 random bytes. */
export const newWebhookSecret = () => `whsec_${randomBytes(32).toString('base64')}`

const headersOf = (req: IncomingMessage) => Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : v ?? '']))

/**
 * A webhook receiver in this process (node:http) that verifies every delivery with the `standardwebhooks`
 * package under `secret`: 400 when the signature does not hold, else `answer` (204 unless changed). `stop()`
 * takes it down (connections are refused), `start()` brings it back on the same port.
 */
export async function webhookReceiver (t: Test, secret: string) {
  const port = await freePort()
  const deliveries: Delivery[] = []
  const verifier = new Webhook(secret)
  let answer = 204
  let server: Server | undefined
  const start = () => new Promise<void>((resolve, reject) => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8')
        const headers = headersOf(req)
        let event: WebhookEvent | undefined
        let error: string | undefined
        try {
          event = verifier.verify(body, headers) as WebhookEvent
        } catch (err) {
          error = (err as Error).message
        }
        const status = event ? answer : 400
        deliveries.push({ id: headers['webhook-id'] ?? '', headers, body, event, error, status })
        res.writeHead(status).end()
      })
    })
    server.listen(port, '127.0.0.1', () => resolve())
    server.once('error', reject)
  })
  const stop = () => new Promise<void>(resolve => {
    if (!server) return resolve()
    server.close(() => resolve())
    // keep-alive connections of the sender's fetch would hold the port open
    server.closeAllConnections()
    server = undefined
  })
  await start()
  t.teardown(stop)
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    deliveries,
    start,
    stop,
    /** What the receiver answers a delivery whose signature holds. */
    answer: (status: number) => { answer = status },
    /** Deliveries that verified and were acknowledged (2xx). */
    accepted: () => deliveries.filter(d => d.event && d.status < 300),
  }
}
