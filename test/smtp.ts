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

const decodeEntities = (s: string) => s
  .replace(/&#(\d+);/g, (_m, n: string) => String.fromCharCode(Number(n)))
  .replace(/&(lt|gt|quot|apos|amp);/g, (_m, name: string) => ({ lt: '<', gt: '>', quot: '"', apos: '\'', amp: '&' })[name]!)

/**
 * A security notice as it must arrive: a plain-text body and an HTML body saying the same, no
 * attachment, no link that carries anything (a query or a fragment), nothing shaped like a token or a
 * six-digit code, and none of `secrets` (tokens, codes, passwords of the events around it) anywhere in
 * the message, headers included. Returns the plain text.
 */
export function assertNotice (t: Test, mail: ParsedMail, secrets: string[] = []): string {
  const text = mail.text ?? ''
  const html = typeof mail.html === 'string' ? mail.html : ''
  t.ok(text.trim().length > 0, 'a plain-text body')
  t.ok(html.trim().length > 0, 'an HTML body')
  t.same(mail.attachments, [], 'no attachment')
  const shown = decodeEntities(html.replace(/<[^>]*>/g, ' ')).replace(/\s+/g, ' ')
  for (const paragraph of text.split(/\n{2,}/).map(p => p.replace(/\s+/g, ' ').trim()).filter(Boolean)) {
    t.ok(shown.includes(paragraph), `the HTML says it too: "${paragraph.slice(0, 50)}…"`)
  }
  const links = [...text.matchAll(/https?:\/\/\S+/g)].map(m => m[0]).concat([...html.matchAll(/href\s*=\s*"([^"]*)"/gi)].map(m => decodeEntities(m[1]!)))
  for (const link of links) t.notMatch(link, /[?#]/, `a link that carries nothing: ${link}`)
  const whole = `${JSON.stringify([...mail.headers])}\n${text}\n${html}`
  t.notMatch(whole, /token=/i, 'no link with a token')
  t.notMatch(`${mail.subject ?? ''}\n${text}`, /[A-Za-z0-9_-]{32,}/, 'nothing shaped like a token')
  t.notMatch(`${mail.subject ?? ''}\n${text}`, /(?<![\w-])\d{6}(?![\w-])/, 'nothing shaped like a code')
  for (const secret of secrets) t.notOk(whole.includes(secret), `no secret in it (${secret.slice(0, 4)}…)`)
  return text
}
