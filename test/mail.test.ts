import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { sql } from 'drizzle-orm'
import { simpleParser } from 'mailparser'
import t from 'tap'
import { backoffMs } from '../src/mail/outbox-sender.js'
import { assertProblem, bearer, build, claims, fakeClock, forgotPassword, login, me, newAccount, register, resetPassword, rows, testDataDir, verifyEmail, type FakeClock, type TokenBody } from './helper.js'
import { smtpServer, tokenFrom } from './smtp.js'

const APP_URL = 'https://app.example.test'
const RESET = 'Reset your password'
const VERIFY = 'Verify your email address'

type Smtp = Awaited<ReturnType<typeof smtpServer>>
async function mailApp (t: Parameters<typeof build>[0], smtp: Smtp, env: Record<string, string> = {}, clock?: FakeClock) {
  return build(t, { env: { SMTP_URL: smtp.url, APP_URL, MAIL_FROM: 'Example Auth <auth@example.test>', ...env }, ...(clock ? { clock } : {}) })
}
const outboxOf = (email: string) => rows<{ kind: string, status: string, attempts: number, last_error: string | null }>(
  sql`select kind, status, attempts, last_error from outbox where recipient = ${email} order by created_at, id`)

t.test('password reset, end to end through SMTP: one-time link, new password, every session ended', async t => {
  const smtp = await smtpServer(t)
  const app = await mailApp(t, smtp)
  const account = newAccount()
  const { tokens } = await register(app, account)

  const res = await forgotPassword(app, `  ${account.email.toUpperCase()} `)
  t.equal(res.statusCode, 202)
  t.equal(res.headers['cache-control'], 'no-store')
  t.same(res.json(), { message: 'If an account uses this address, an email with a reset link is on its way.' })

  const mail = await smtp.next(account.email, RESET)
  t.equal(mail.from?.value[0]?.address, 'auth@example.test')
  t.equal(mail.from?.value[0]?.name, 'Example Auth')
  const token = tokenFrom(mail, APP_URL, '/reset-password')
  t.ok(mail.html && mail.html.includes(`${APP_URL}/reset-password?token=${token}`), 'the HTML body has the same link')
  t.match(mail.text, /works once, for 30 minutes/)

  // the database never holds the token, only its hash
  const stored = await rows<Record<string, unknown>>(sql`select * from email_tokens where user_id = ${tokens.user.id}`)
  t.notOk(JSON.stringify(stored).includes(token), 'no token in email_tokens')
  t.notOk(JSON.stringify(await rows(sql`select * from outbox`)).includes(token), 'no token in the outbox')
  t.notOk(app.logs.join('').includes(token), 'no token in the log')

  // a refused password leaves the token usable
  const weak = await resetPassword(app, token, 'short')
  t.equal(assertProblem(t, weak, 400, 'password_too_short').errors[0].path, '/newPassword')
  const newPassword = 'a brand new passphrase after the reset'
  const done = await resetPassword(app, token, newPassword)
  t.equal(done.statusCode, 204)
  t.equal(done.body, '')
  assertProblem(t, await me(app, tokens.accessToken), 401, 'session_revoked')
  assertProblem(t, await app.inject({ method: 'POST', url: '/refresh', payload: { refreshToken: tokens.refreshToken } }), 401, 'session_revoked')
  assertProblem(t, await login(app, { email: account.email, password: account.password }), 401, 'invalid_credentials')
  const signedIn = await login(app, { email: account.email, password: newPassword })
  t.equal(signedIn.statusCode, 200)
  t.equal((await me(app, signedIn.json().accessToken)).json().emailVerified, true, 'following the link proved the address')

  assertProblem(t, await resetPassword(app, token, 'yet another good passphrase'), 400, 'reset_token_invalid')
  for (const bad of ['', 'x', 'A'.repeat(43), `${token}x`]) assertProblem(t, await resetPassword(app, bad, newPassword), 400, 'reset_token_invalid')
  assertProblem(t, await app.inject({ method: 'POST', url: '/password/reset', payload: { token, newPassword: 1234 } }), 400, 'validation_failed')
  t.match(app.logs.join(''), new RegExp(`"audit":"password_reset","ip":"[^"]+","userId":"${tokens.user.id}"`))
})

t.test('unknown and known addresses get the same answer; only the known one gets mail', async t => {
  const smtp = await smtpServer(t)
  const app = await mailApp(t, smtp, { TRUST_PROXY: 'true' })
  const { body: account } = await register(app)
  const ghost = `nobody.${Date.now()}@example.com`
  // from two clients, so the per-IP counters (RateLimit-Remaining) start equal
  const known = await forgotPassword(app, account.email, { 'x-forwarded-for': '198.51.100.1' })
  const unknown = await forgotPassword(app, ghost, { 'x-forwarded-for': '198.51.100.2' })
  const strip = (h: Record<string, unknown>) => { const { date: _d, ...rest } = h; return rest }
  t.equal(unknown.statusCode, known.statusCode)
  t.equal(unknown.body, known.body)
  t.same(strip(unknown.headers), strip(known.headers), 'same headers')
  // the request did the same work for both: one row naming the address
  t.same((await outboxOf(ghost)).map(r => r.kind), ['password_reset'])
  t.same((await outboxOf(account.email)).filter(r => r.kind === 'password_reset').length, 1)

  await smtp.next(account.email, RESET)
  await app.mailer.flush()
  t.equal(smtp.countTo(ghost), 0, 'no mail to an address without an account')

  // bad input is a 400 problem and queues nothing
  const queued = await rows(sql`select id from outbox`)
  for (const payload of [{ email: 'not an address' }, {}, { email: 42 }, { email: account.email, extra: true }]) {
    assertProblem(t, await app.inject({ method: 'POST', url: '/password/forgot', payload }), 400, 'validation_failed')
  }
  assertProblem(t, await app.inject({ method: 'POST', url: '/email/verify', payload: { token: 7 } }), 400, 'validation_failed')
  t.equal((await rows(sql`select id from outbox`)).length, queued.length, 'nothing queued')
  t.same((await outboxOf(ghost)).map(r => r.status), ['skipped'])
  t.same(await rows(sql`select 1 from email_tokens t join users u on u.id = t.user_id where u.email = ${ghost}`), [])
})

t.test('a newer request voids the older link; a link expires after RESET_TOKEN_TTL', async t => {
  const smtp = await smtpServer(t)
  const clock = fakeClock()
  const app = await mailApp(t, smtp, {}, clock)
  const { body: account } = await register(app)
  await forgotPassword(app, account.email)
  const first = tokenFrom(await smtp.next(account.email, RESET), APP_URL, '/reset-password')
  clock.advance(1000)
  await forgotPassword(app, account.email)
  const second = tokenFrom(await smtp.next(account.email, RESET), APP_URL, '/reset-password')
  t.not(first, second)
  assertProblem(t, await resetPassword(app, first, 'a new passphrase for the first link'), 400, 'reset_token_invalid')

  clock.advance(1800_000)
  assertProblem(t, await resetPassword(app, second, 'a new passphrase that comes too late'), 400, 'reset_token_invalid')
  t.equal((await login(app, { email: account.email, password: account.password })).statusCode, 200, 'the password never changed')
})

t.test('reset requests are limited per address and per IP; a limited request sends nothing', async t => {
  const smtp = await smtpServer(t)
  const app = await mailApp(t, smtp, { RATE_LIMIT_FORGOT: '2', RATE_LIMIT_FORGOT_IP: '6' })
  const { body: account } = await register(app)
  const ghost = `ghost.${Date.now()}@example.com`
  for (let i = 0; i < 2; i++) {
    t.equal((await forgotPassword(app, account.email)).statusCode, 202)
    t.equal((await forgotPassword(app, ghost)).statusCode, 202)
  }
  const limited = await forgotPassword(app, account.email)
  const body = assertProblem(t, limited, 429, 'too_many_requests')
  t.ok(Number(limited.headers['retry-after']) > 3500, 'an hour window')
  t.equal(limited.headers['ratelimit-limit'], '2')
  const ghostLimited = await forgotPassword(app, ghost)
  t.same(assertProblem(t, ghostLimited, 429, 'too_many_requests'), body, 'the same answer for an unknown address')

  await app.mailer.flush()
  // the second request voids the first link, so its mail may be skipped if it had not left yet
  const sent = smtp.countTo(account.email, RESET)
  t.ok(sent === 1 || sent === 2, `${sent} reset mail(s) for two requests`)
  await app.mailer.flush()
  t.equal(smtp.countTo(account.email, RESET), sent, 'the limited request sent nothing')
  t.equal((await outboxOf(account.email)).filter(r => r.kind === 'password_reset').length, 2)

  // per IP: six requests within the hour pass the IP limit (two were refused per address), the seventh does not
  const fromIp = await forgotPassword(app, `another.${Date.now()}@example.com`)
  assertProblem(t, fromIp, 429, 'too_many_requests')
  t.match(app.logs.join(''), /"audit":"password_reset_requested"/)
})

t.test('email verification: mail at sign-up, one-time link, /me and the next token say verified', async t => {
  const smtp = await smtpServer(t)
  const app = await mailApp(t, smtp)
  const { body: account, tokens } = await register(app)
  t.equal(claims(tokens.accessToken).email_verified, false)
  t.equal((await me(app, tokens.accessToken)).json().emailVerified, false)

  const mail = await smtp.next(account.email, VERIFY)
  const token = tokenFrom(mail, APP_URL, '/verify-email')
  t.match(mail.text, /works once, for 24 hours/)
  const res = await verifyEmail(app, token)
  t.equal(res.statusCode, 204)
  t.equal((await me(app, tokens.accessToken)).json().emailVerified, true)
  t.equal(claims(tokens.accessToken).email_verified, false, 'a token says what was true when it was issued')
  const next = (await app.inject({ method: 'POST', url: '/refresh', payload: { refreshToken: tokens.refreshToken } })).json() as TokenBody
  t.equal(claims(next.accessToken).email_verified, true, 'the next refresh carries the new value')
  const [row] = await rows<{ email_verified_at: unknown }>(sql`select email_verified_at from users where id = ${tokens.user.id}`)
  t.ok(row!.email_verified_at)

  assertProblem(t, await verifyEmail(app, token), 400, 'verification_token_invalid')
  assertProblem(t, await verifyEmail(app, 'B'.repeat(43)), 400, 'verification_token_invalid')
  assertProblem(t, await verifyEmail(app, 'not a token'), 400, 'verification_token_invalid')

  // already verified: 202 and nothing sent
  const resend = await app.inject({ method: 'POST', url: '/email/verify/resend', headers: bearer(next.accessToken) })
  t.equal(resend.statusCode, 202)
  await app.mailer.flush()
  t.equal(smtp.countTo(account.email, VERIFY), 0)
  assertProblem(t, await app.inject({ method: 'POST', url: '/email/verify/resend' }), 401, 'invalid_token')
})

t.test('resend voids the older link; links expire after VERIFY_TOKEN_TTL', async t => {
  const smtp = await smtpServer(t)
  const clock = fakeClock()
  const app = await mailApp(t, smtp, { VERIFY_TOKEN_TTL: '600' }, clock)
  const { body: account, tokens } = await register(app)
  const first = tokenFrom(await smtp.next(account.email, VERIFY), APP_URL, '/verify-email')
  clock.advance(1000)
  const resend = await app.inject({ method: 'POST', url: '/email/verify/resend', headers: bearer(tokens.accessToken) })
  t.equal(resend.statusCode, 202)
  t.same(resend.json(), { message: 'If the address still needs verifying, a new link is on its way.' })
  const second = tokenFrom(await smtp.next(account.email, VERIFY), APP_URL, '/verify-email')
  assertProblem(t, await verifyEmail(app, first), 400, 'verification_token_invalid')
  clock.advance(600_000)
  assertProblem(t, await verifyEmail(app, second), 400, 'verification_token_invalid')
  t.equal((await me(app, tokens.accessToken)).json().emailVerified, false)
})

t.test('REQUIRE_EMAIL_VERIFICATION: sign-up still signs in; sign-in waits for the link, after the password check', async t => {
  const smtp = await smtpServer(t)
  const app = await mailApp(t, smtp, { REQUIRE_EMAIL_VERIFICATION: 'true' })
  const account = newAccount()
  const res = await app.inject({ method: 'POST', url: '/register', payload: account })
  t.equal(res.statusCode, 201)
  t.type(res.json().accessToken, 'string')
  assertProblem(t, await login(app, { email: account.email, password: 'the wrong password' }), 401, 'invalid_credentials')
  assertProblem(t, await login(app, { email: account.email, password: account.password }), 403, 'email_not_verified')
  t.equal((await verifyEmail(app, tokenFrom(await smtp.next(account.email, VERIFY), APP_URL, '/verify-email'))).statusCode, 204)
  t.equal((await login(app, { email: account.email, password: account.password })).statusCode, 200)
})

t.test('links come from APP_URL, never from Host or X-Forwarded-Host', async t => {
  const smtp = await smtpServer(t)
  const app = await mailApp(t, smtp, { TRUST_PROXY: 'true' })
  const { body: account } = await register(app)
  await forgotPassword(app, account.email, { host: 'evil.example', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'http' })
  const mail = await smtp.next(account.email, RESET)
  tokenFrom(mail, APP_URL, '/reset-password')
  t.notOk(`${mail.text}${mail.html}`.includes('evil.example'))
})

t.test('SMTP down, then back: the mail arrives later, once; retries back off up to 30 s; a day later it is given up', async t => {
  const smtp = await smtpServer(t)
  const clock = fakeClock()
  // links that outlive the day of retries, so the message is still worth sending when it is given up
  const app = await mailApp(t, smtp, { VERIFY_TOKEN_TTL: '2592000' }, clock)
  const { body: account } = await register(app)
  await smtp.next(account.email, VERIFY)
  await smtp.stop()

  const res = await forgotPassword(app, account.email)
  t.equal(res.statusCode, 202, 'the request does not wait for the mail server')
  await app.mailer.flush()
  const [failed] = (await outboxOf(account.email)).filter(r => r.kind === 'password_reset')
  t.match(failed, { status: 'pending', attempts: 1 })
  t.match(failed!.last_error, /ECONNREFUSED|connect/i)

  await smtp.start()
  await app.mailer.flush()
  t.equal(smtp.countTo(account.email, RESET), 0, 'not before its retry time')
  clock.advance(30_000)
  await app.mailer.flush()
  const mail = await smtp.next(account.email, RESET)
  tokenFrom(mail, APP_URL, '/reset-password')
  clock.advance(60_000)
  await app.mailer.flush()
  await app.mailer.flush()
  t.equal(smtp.countTo(account.email, RESET), 0, 'sent once')
  t.same((await outboxOf(account.email)).map(r => r.status), ['sent', 'sent'])

  for (let attempts = 1; attempts <= 40; attempts++) {
    const wait = backoffMs(attempts)
    t.ok(wait <= 30_000 && wait >= Math.min(30_000, 1000 * 2 ** (attempts - 1)) * 0.8, `attempt ${attempts}: ${wait} ms`)
  }

  // a message that cannot be delivered is retried for a day, then given up
  await smtp.stop()
  const other = newAccount()
  await register(app, other)
  for (const hours of [1, 12, 23]) {
    clock.set(Date.now() + hours * 3600_000)
    await app.mailer.flush()
    t.same((await outboxOf(other.email)).map(r => r.status), ['pending'], `still trying after ${hours} h`)
  }
  clock.advance(2 * 3600_000)
  await app.mailer.flush()
  t.same((await outboxOf(other.email)).map(r => r.status), ['failed'])
  t.match(app.logs.join(''), /outbox row given up after a day of attempts/)
})

t.test('two instances share the outbox: every message is sent exactly once', async t => {
  const smtp = await smtpServer(t)
  const one = await mailApp(t, smtp)
  const two = await mailApp(t, smtp)
  const accounts = Array.from({ length: 12 }, () => newAccount())
  await Promise.all(accounts.map((a, i) => register(i % 2 ? one : two, a)))
  await Promise.all([one.mailer.flush(), two.mailer.flush(), one.mailer.flush(), two.mailer.flush()])
  for (const a of accounts) await smtp.next(a.email, VERIFY)
  await Promise.all([one.mailer.flush(), two.mailer.flush()])
  t.same(accounts.map(a => smtp.countTo(a.email)), accounts.map(() => 0), 'no second copy')
})

t.test('development, no SMTP_URL: mail is logged and written as .eml under DATA_DIR/mail; the link pages are served', async t => {
  const app = await build(t)
  const { body: account } = await register(app)
  await app.inject({ method: 'POST', url: '/password/forgot', payload: { email: account.email } })
  await app.mailer.flush()
  const dir = join(testDataDir(), 'mail')
  const files = readdirSync(dir).filter(f => f.endsWith('.eml'))
  const mails = await Promise.all(files.map(f => simpleParser(readFileSync(join(dir, f)))))
  const mine = mails.filter(m => (Array.isArray(m.to) ? m.to[0] : m.to)?.value[0]?.address === account.email)
  t.same(mine.map(m => m.subject).sort(), [RESET, VERIFY])
  const token = tokenFrom(mine.find(m => m.subject === RESET)!, 'http://localhost:3000', '/reset-password')
  t.match(app.logs.join(''), new RegExp(`"subject":"${RESET}","link":"http://localhost:3000/reset-password\\?token=${token}"`))

  const page = await app.inject({ url: `/reset-password?token=${token}` })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /text\/html/)
  t.match(String(page.headers['content-security-policy']), /script-src 'self'/)
  t.equal((await app.inject({ url: '/verify-email?token=x' })).statusCode, 200)
  t.equal((await app.inject({ url: '/demo/links.js' })).statusCode, 200)
  t.notOk(app.logs.join('').includes(`/reset-password?token=${token}"}`) && app.logs.join('').includes(`"url":"/reset-password?token=${token}`), 'the page request logs no token')
  t.match(app.logs.join(''), /"url":"\/reset-password\?token=\[redacted\]"/)
})
