import { sql } from 'drizzle-orm'
import t from 'tap'
import { CONCURRENCY } from '../src/mail/transport.js'
import { build, newAccount, register, rows, stub, type Test, type TestApp } from './helper.js'
import { smtpServer } from './smtp.js'

const VERIFY = 'Verify your email address'
type Smtp = Awaited<ReturnType<typeof smtpServer>>
const mailApp = (t: Test, smtp: Smtp) => build(t, { env: { SMTP_URL: smtp.url, APP_URL: 'https://app.example.test' } })

/** Signs `count` accounts up while the sender of `app` sleeps (no kick, no poll): their mail waits in the outbox. */
async function queued (t: Test, app: TestApp, count: number) {
  const asleep = stub(t, app.mailer, 'kick', () => {})
  const accounts = Array.from({ length: count }, () => newAccount())
  for (const account of accounts) await register(app, account)
  asleep.restore()
  return accounts
}

const verifyRows = (emails: string[]) => rows<{ recipient: string, status: string, attempts: number }>(
  sql`select recipient, status, attempts from outbox where kind = 'verify_email' and recipient in (${sql.join(emails.map(e => sql`${e}`), sql`, `)})`)

t.test('a slow relay: several messages in flight at once, from two instances, and none is sent twice', async t => {
  const smtp = await smtpServer(t, { accept: () => new Promise(resolve => setTimeout(resolve, 150)) })
  const one = await mailApp(t, smtp)
  const two = await mailApp(t, smtp)
  const accounts = [...await queued(t, one, 16), ...await queued(t, two, 16)]

  await Promise.all([one.mailer.flush(), two.mailer.flush()])
  t.ok(smtp.counts.maxInFlight > 1, `${smtp.counts.maxInFlight} messages at the relay at once`)
  t.ok(smtp.counts.maxInFlight <= 2 * CONCURRENCY, 'no more than each instance\'s CONCURRENCY')
  await Promise.all([one.mailer.flush(), two.mailer.flush()])
  t.same(accounts.map(a => smtp.countTo(a.email, VERIFY)), accounts.map(() => 1), 'each message once')
  t.same((await verifyRows(accounts.map(a => a.email))).map(r => [r.status, r.attempts]), accounts.map(() => ['sent', 1]))
})

t.test('a message is claimed only when it can go out at once: the rest stay free for other instances', async t => {
  // the relay holds every message until released
  let release: () => void = () => {}
  const held = new Promise<void>(resolve => { release = resolve })
  const smtp = await smtpServer(t, { accept: () => held })
  const app = await mailApp(t, smtp)
  const count = CONCURRENCY + 8
  const accounts = await queued(t, app, count)

  app.mailer.kick()
  for (let i = 0; i < 500 && smtp.counts.inFlight < CONCURRENCY; i++) await new Promise(resolve => setTimeout(resolve, 10))
  t.equal(smtp.counts.inFlight, CONCURRENCY, 'CONCURRENCY messages at the relay')
  const claimed = (await verifyRows(accounts.map(a => a.email))).filter(r => r.attempts > 0)
  t.equal(claimed.length, CONCURRENCY, 'only those are claimed (their lease runs from when they go out, not from behind a queue)')

  release()
  await app.mailer.flush()
  t.same(accounts.map(a => smtp.countTo(a.email, VERIFY)), accounts.map(() => 1), 'then the rest, each once')
  t.equal(smtp.counts.connections, CONCURRENCY, `${count} messages over the pool's ${CONCURRENCY} connections, not one each`)
  t.same([...new Set((await verifyRows(accounts.map(a => a.email))).map(r => r.status))], ['sent'])
})
