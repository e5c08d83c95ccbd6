import { simpleParser, type ParsedMail } from 'mailparser'
import { SMTPServer } from 'smtp-server'
import type { Test } from './helper.js'
import { freePort } from './live-server.js'

/**
 * A real SMTP server in this process: what arrives is parsed and kept. `stop()` takes it down
 * (connections are refused) and `start()` brings it back on the same port.
 */
export async function smtpServer (t: Test) {
  const port = await freePort()
  const inbox: ParsedMail[] = []
  let server: SMTPServer | undefined
  const start = () => new Promise<void>((resolve, reject) => {
    server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      onData (stream, _session, callback) {
        simpleParser(stream).then(mail => { inbox.push(mail); callback() }, callback)
      },
    })
    server.on('error', () => {})
    server.listen(port, '127.0.0.1', () => resolve())
    server.server.once('error', reject)
  })
  const stop = () => new Promise<void>(resolve => { if (server) server.close(() => resolve()); else resolve() })
  await start()
  t.teardown(stop)

  /** Waits for a mail to `to` (with this subject, if given) not yet taken, and takes it. */
  async function next (to: string, subject?: string, timeoutMs = 10_000): Promise<ParsedMail> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const i = inbox.findIndex(m => addressOf(m) === to && (subject === undefined || m.subject === subject))
      if (i !== -1) return inbox.splice(i, 1)[0]!
      if (Date.now() > deadline) throw new Error(`no mail to ${to} within ${timeoutMs} ms`)
      await new Promise(resolve => setTimeout(resolve, 20))
    }
  }
  const countTo = (to: string, subject?: string) => inbox.filter(m => addressOf(m) === to && (subject === undefined || m.subject === subject)).length
  return { url: `smtp://127.0.0.1:${port}`, inbox, start, stop, next, countTo }
}

const addressOf = (mail: ParsedMail) => (Array.isArray(mail.to) ? mail.to[0] : mail.to)?.value[0]?.address

/** The token of the one link in a mail's text, checking the link is exactly `${base}${path}?token=…`. */
export function tokenFrom (mail: ParsedMail, base: string, path: string): string {
  const links = (mail.text ?? '').match(/https?:\/\/\S+/g) ?? []
  if (links.length !== 1) throw new Error(`expected one link, got ${links.length}`)
  const match = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}${path}\\?token=([A-Za-z0-9_-]{43})$`).exec(links[0]!)
  if (!match) throw new Error(`unexpected link ${links[0]}`)
  return match[1]!
}
