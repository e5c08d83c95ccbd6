import { mkdirSync, writeFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import type { FastifyBaseLogger } from 'fastify'
import type { Transporter } from 'nodemailer'
import type { Message } from './templates.js'

/** Messages the outbox sender has in flight at once, and so the SMTP connections it keeps open. */
export const CONCURRENCY = 16

type Nodemailer = typeof import('nodemailer')
// nodemailer is loaded when the first message goes out, not at start (it is not small).
const lazy = (make: (nodemailer: Nodemailer) => Transporter | Promise<Transporter>) => {
  let transporter: Promise<Transporter> | undefined
  return () => (transporter ??= import('nodemailer').then(m => make(m.default)))
}

export interface Transport {
  send (message: Message, meta: { id: string, link: string }): Promise<void>
  close (): void
}

const CONNECTION_TIMEOUT_MS = 10_000

/**
 * The relay's TCP connection, opened with Nagle's algorithm off. nodemailer writes the end of a message's
 * DATA as a small segment of its own; with Nagle on, that waits for the ACK of the segment before it, which
 * the relay delays (40 ms on Linux): ~45 ms of waiting a message, over loopback as over any network.
 * nodemailer upgrades this connection to TLS itself (smtps://, or STARTTLS).
 */
function openConnection (options: { host?: string, port?: number | string, secure?: boolean }, done: (err: Error | null, socketOptions?: { connection: Socket }) => void) {
  // nodemailer's defaults for a URL without them
  const port = Number(options.port) || (options.secure ? 465 : 587)
  const socket = connect({ host: options.host ?? 'localhost', port, noDelay: true, keepAlive: true })
  const fail = (err: Error) => { clearTimeout(timer); socket.destroy(); done(err) }
  const timer = setTimeout(() => fail(Object.assign(new Error('Connection timeout'), { code: 'ETIMEDOUT' })), CONNECTION_TIMEOUT_MS)
  socket.once('error', fail)
  socket.once('connect', () => {
    clearTimeout(timer)
    socket.removeListener('error', fail)
    done(null, { connection: socket })
  })
}

/**
 * SMTP (SMTP_URL), with timeouts short enough that a stuck server cannot hold a message's lease. Pooled:
 * messages reuse open connections instead of a TCP and SMTP handshake each, one connection per message
 * the sender has in flight.
 */
export function smtpTransport (url: string): Transport {
  const transporter = lazy(async nodemailer => {
    const { parseConnectionUrl } = await import('nodemailer/lib/shared/index.js')
    // given a URL, createTransport reads nothing but the URL (its second argument is defaults of each
    // message), so the URL's settings and these go in one object
    return nodemailer.createTransport({
      ...parseConnectionUrl(url), pool: true, maxConnections: CONCURRENCY, connectionTimeout: CONNECTION_TIMEOUT_MS, greetingTimeout: 10_000, socketTimeout: 20_000, getSocket: openConnection,
    })
  })
  let opened = false
  return {
    async send (message) {
      opened = true
      await (await transporter()).sendMail(message)
    },
    close: () => { if (opened) transporter().then(t => t.close(), () => {}) },
  }
}

/**
 * Development without SMTP_URL: each message is written as an .eml file under `dir` and its subject and
 * link are logged, so a person running `npm start` can click through. Never used in production.
 */
export function fileTransport (dir: string, log: FastifyBaseLogger): Transport {
  const transporter = lazy(nodemailer => nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' }))
  return {
    async send (message, meta) {
      const info = await (await transporter()).sendMail(message) as unknown as { message: Buffer }
      mkdirSync(dir, { recursive: true })
      const file = join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}-${meta.id}.eml`)
      writeFileSync(file, info.message)
      log.info({ mail: { to: message.to, subject: message.subject, link: meta.link, file } }, `mail (development, no SMTP_URL): ${message.subject} ${meta.link}`)
    },
    close: () => {},
  }
}
