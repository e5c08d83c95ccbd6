import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { SigningKey } from '../auth/keys.js'
import { OutboxSender } from '../mail/outbox-sender.js'
import { fileTransport, smtpTransport } from '../mail/transport.js'
import { webhookTransport } from '../mail/webhooks.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The outbox sender: `kick()` after queuing, `flush()` to send what is due now. */
    mailer: OutboxSender
  }
}

const POLL_MS = 1000

/** Mail and webhooks leave through the outbox: SMTP with SMTP_URL, else (development) .eml files under DATA_DIR/mail; webhooks to WEBHOOK_URL. */
async function mailPlugin (app: FastifyInstance, opts: { signingKey: SigningKey }) {
  const { config } = app
  const transport = config.mail.smtpUrl
    ? smtpTransport(config.mail.smtpUrl)
    : fileTransport(join(config.dataDir, 'mail'), app.log)
  const { url, secret } = config.webhooks
  const webhooks = url && secret ? webhookTransport(url, secret) : undefined
  const sender = new OutboxSender({ db: app.db, config, clock: app.clock, mailSecret: opts.signingKey.mailSecret, transport, webhooks, log: app.log })
  app.decorate('mailer', sender)
  app.addHook('onReady', async () => {
    if (!config.mail.smtpUrl) app.log.info({ dir: join(config.dataDir, 'mail') }, 'no SMTP_URL: mail is logged and written as .eml files (development only)')
    sender.start(POLL_MS)
  })
  // before the database closes (onClose): a round in progress finishes
  app.addHook('preClose', async () => { await sender.stop() })
}

export default fp(mailPlugin, { name: 'mail', dependencies: ['config', 'db'] })
