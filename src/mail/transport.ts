import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyBaseLogger } from 'fastify'
import nodemailer from 'nodemailer'
import type { Message } from './templates.js'

export interface Transport {
  send (message: Message, meta: { id: string, link: string }): Promise<void>
  close (): void
}

/** SMTP (SMTP_URL), with timeouts short enough that a stuck server cannot hold a message's lease. */
export function smtpTransport (url: string): Transport {
  const transporter = nodemailer.createTransport(url, { connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 20_000 })
  return {
    async send (message) { await transporter.sendMail(message) },
    close: () => transporter.close(),
  }
}

/**
 * Development without SMTP_URL: each message is written as an .eml file under `dir` and its subject and
 * link are logged, so a person running `npm start` can click through. Never used in production.
 */
export function fileTransport (dir: string, log: FastifyBaseLogger): Transport {
  const transporter = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' })
  return {
    async send (message, meta) {
      const info = await transporter.sendMail(message) as unknown as { message: Buffer }
      mkdirSync(dir, { recursive: true })
      const file = join(dir, `${new Date().toISOString().replace(/[:.]/g, '-')}-${meta.id}.eml`)
      writeFileSync(file, info.message)
      log.info({ mail: { to: message.to, subject: message.subject, link: meta.link, file } }, `mail (development, no SMTP_URL): ${message.subject} ${meta.link}`)
    },
    close: () => {},
  }
}
