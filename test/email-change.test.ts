import { randomBytes } from 'node:crypto'
import { sql } from 'drizzle-orm'
import t from 'tap'
import {
  assertProblem, bearer, build, call, claims, fakeClock, forgotPassword, login, me, newAccount, post, refresh, register,
  resetPassword, rows, signIn, verifyEmail, type FakeClock, type Test, type TestApp, type TokenBody,
} from './helper.js'
import { auditLines, callbackFor, oidcEnv, person, signInWith } from './oidc-flow.js'
import { startTestProvider } from './oidc-provider.js'
import { assertNotice, smtpServer, tokenFrom } from './smtp.js'

// POST /me/email and POST /email/change/confirm, end to end through a real SMTP server: the link to the
// new address, the notices to the current one, and what following the link changes.

const op = await startTestProvider({ redirectUris: [callbackFor('test')] })
t.teardown(() => op.stop())

const APP_URL = 'https://app.example.test'
const CHANGE = 'Confirm your new email address'
const REQUESTED = 'A change of your email address was asked for'
const CHANGED = 'Your email address was changed'
const VERIFY = 'Verify your email address'
const RESET = 'Reset your password'
const ANSWER = { message: 'A link to confirm the change is on its way to the new address; until it is followed, nothing changes.' }
const HOUR = 3600_000
const WINDOW = 10 * 60_000

type Smtp = Awaited<ReturnType<typeof smtpServer>>
const mailApp = (t: Test, smtp: Smtp, env: Record<string, string> = {}, clock?: FakeClock) =>
  build(t, { env: { SMTP_URL: smtp.url, APP_URL, MAIL_FROM: 'Example Auth <auth@example.test>', ...env }, ...(clock ? { clock } : {}) })

let addresses = 0
/** An address no account has yet. */
const freshAddress = () => `moved${process.pid}x${++addresses}x${randomBytes(3).toString('hex')}@example.net`

const changeEmail = (app: TestApp, accessToken: string, body: Record<string, unknown>, headers: Record<string, string> = {}) =>
  call(app, 'POST', '/me/email', accessToken, body, headers)
const confirmChange = (app: TestApp, token: unknown, headers: Record<string, string> = {}) => post(app, '/email/change/confirm', { token }, headers)

/** A new account whose verification mail has arrived (so the inbox holds only what the test causes). */
async function account (app: TestApp, smtp: Smtp) {
  const { body, tokens } = await register(app)
  const verifyToken = tokenFrom(await smtp.next(body.email, VERIFY), APP_URL, '/verify-email')
  return { account: body, tokens, verifyToken }
}

/** The link that arrived at `newEmail`, checked to be the one link of the mail, in text and HTML. */
async function linkAt (t: Test, smtp: Smtp, newEmail: string) {
  const mail = await smtp.next(newEmail, CHANGE)
  const token = tokenFrom(mail, APP_URL, '/confirm-email')
  t.ok(typeof mail.html === 'string' && mail.html.includes(`${APP_URL}/confirm-email?token=${token}`), 'the HTML body has the same link')
  return { mail, token }
}

/** After everything due is sent: nothing more arrived at `to` (with this subject, if given). */
async function nothingMore (t: Test, app: TestApp, smtp: Smtp, to: string, subject?: string, why = 'nothing more') {
  await app.mailer.flush()
  await app.mailer.flush()
  t.equal(smtp.countTo(to, subject), 0, `${why} (${to}${subject ? `, "${subject}"` : ''})`)
}

const userRow = async (id: string) => (await rows<{ email: string, verified: boolean, updated_at: unknown }>(
  sql`select email, email_verified_at is not null as verified, updated_at from users where id = ${id}`))[0]!
const outboxTo = (email: string) => rows<{ kind: string, status: string }>(sql`select kind, status from outbox where recipient = ${email} order by created_at, id`)

t.test('the link goes to the new address, a notice naming it to the current one; following it changes the address, verified, and ends every session', async t => {
  const smtp = await smtpServer(t)
  const app = await mailApp(t, smtp)
  const { account: a, tokens } = await account(app, smtp)
  const other = await signIn(app, a)
  const newEmail = freshAddress()

  const res = await changeEmail(app, tokens.accessToken, { newEmail: newEmail.toUpperCase(), currentPassword: a.password })
  t.equal(res.statusCode, 202)
  t.equal(res.headers['cache-control'], 'no-store')
  t.same(res.json(), ANSWER)

  const { mail, token } = await linkAt(t, smtp, newEmail)
  t.equal(mail.from?.value[0]?.address, 'auth@example.test')
  t.match(mail.text, /works once, for 60 minutes/)
  const notice = await smtp.next(a.email, REQUESTED)
  const text = assertNotice(t, notice, [token, a.password, tokens.accessToken, tokens.refreshToken])
  t.ok(text.includes(newEmail), 'the notice names the new address in full (lower-cased)')
  t.ok(String(notice.html).includes(newEmail))
  await nothingMore(t, app, smtp, newEmail, undefined, 'one mail to the new address')
  await nothingMore(t, app, smtp, a.email, undefined, 'one notice to the current address')

  // the database and the log never hold the token
  t.notOk(JSON.stringify(await rows(sql`select * from email_tokens where user_id = ${tokens.user.id}`)).includes(token), 'no token in email_tokens')
  t.notOk(JSON.stringify(await rows(sql`select * from outbox`)).includes(token), 'no token in the outbox')
  t.notOk(app.logs.join('').includes(token), 'no token in the log')

  // until the link is followed, nothing changes
  t.equal((await me(app, tokens.accessToken)).json().email, a.email)
  t.equal((await login(app, { email: a.email, password: a.password })).statusCode, 200)
  assertProblem(t, await login(app, { email: newEmail, password: a.password }), 401, 'invalid_credentials')

  const done = await confirmChange(app, token)
  t.equal(done.statusCode, 204)
  t.equal(done.body, '')
  t.equal(done.headers['cache-control'], 'no-store')

  // every session ended: no bearer token came with the confirmation
  for (const session of [tokens, other]) {
    assertProblem(t, await me(app, session.accessToken), 401, 'session_revoked')
    assertProblem(t, await refresh(app, session.refreshToken), 401, 'session_revoked')
  }
  const now = await signIn(app, { email: newEmail, password: a.password })
  t.equal(now.user.id, tokens.user.id, 'the new address signs in')
  t.equal(now.user.email, newEmail)
  t.match((await me(app, now.accessToken)).json(), { email: newEmail, emailVerified: true }, 'following the link verified it')
  t.equal(claims(now.accessToken).email_verified, true)
  assertProblem(t, await login(app, { email: a.email, password: a.password }), 401, 'invalid_credentials')
  t.match(await userRow(tokens.user.id), { email: newEmail, verified: true })

  // the last notice, to the old address, naming the new
  const last = await smtp.next(a.email, CHANGED)
  t.ok(assertNotice(t, last, [token, a.password]).includes(newEmail), 'the old address is told the new one')
  await nothingMore(t, app, smtp, a.email, undefined, 'one last notice to the old address')
  await nothingMore(t, app, smtp, newEmail, undefined, 'no notice to the new address')

  assertProblem(t, await confirmChange(app, token), 400, 'email_change_token_invalid')
  t.match(auditLines(app, 'email_changed').at(-1), { userId: tokens.user.id, sessionsEnded: 3 })
  t.match(auditLines(app, 'email_change_requested').at(-1), { userId: tokens.user.id })
  t.notOk(JSON.stringify(auditLines(app, 'email_change_requested')).includes(a.password), 'no password in the audit line')
})

t.test('confirming with the user\'s own bearer token keeps that session only; another user\'s token, or a bad one, keeps none', async t => {
  const smtp = await smtpServer(t)
  const app = await mailApp(t, smtp)

  const { account: a, tokens: first } = await account(app, smtp)
  const second = await signIn(app, a)
  const third = await signIn(app, a)
  const newA = freshAddress()
  t.equal((await changeEmail(app, first.accessToken, { newEmail: newA, currentPassword: a.password })).statusCode, 202)
  t.equal((await confirmChange(app, (await linkAt(t, smtp, newA)).token, bearer(second.accessToken))).statusCode, 204)
  t.equal((await me(app, second.accessToken)).json().email, newA, 'the confirming session stays, with the new address')
  const next = (await refresh(app, second.refreshToken)).json() as TokenBody
  t.equal(next.user.email, newA, 'and refreshes')
  for (const ended of [first, third]) assertProblem(t, await me(app, ended.accessToken), 401, 'session_revoked')
  t.match(auditLines(app, 'email_changed').at(-1), { userId: first.user.id, sessionsEnded: 2 })

  // someone else's token does not keep any of this user's sessions, nor end any of its own
  const { tokens: bystander } = await account(app, smtp)
  const { account: b, tokens: mine } = await account(app, smtp)
  const newB = freshAddress()
  t.equal((await changeEmail(app, mine.accessToken, { newEmail: newB, currentPassword: b.password })).statusCode, 202)
  t.equal((await confirmChange(app, (await linkAt(t, smtp, newB)).token, bearer(bystander.accessToken))).statusCode, 204)
  assertProblem(t, await me(app, mine.accessToken), 401, 'session_revoked')
  t.not((await me(app, bystander.accessToken)).json().email, newB, 'the bystander is still signed in, as before')

  // a token that does not verify is as good as none
  const { account: c, tokens: theirs } = await account(app, smtp)
  const newC = freshAddress()
  t.equal((await changeEmail(app, theirs.accessToken, { newEmail: newC, currentPassword: c.password })).statusCode, 202)
  t.equal((await confirmChange(app, (await linkAt(t, smtp, newC)).token, { authorization: 'Bearer not.a.token' })).statusCode, 204)
  assertProblem(t, await me(app, theirs.accessToken), 401, 'session_revoked')
})

t.test('an address another account has: the same 202, no link and nothing at all to that address; the notice still goes to the current one', async t => {
  const smtp = await smtpServer(t)
  const app = await mailApp(t, smtp, { TRUST_PROXY: 'true' })
  const { account: a, tokens } = await account(app, smtp)
  const { account: taken, tokens: owner } = await account(app, smtp)
  const { account: c, tokens: control } = await account(app, smtp)
  const free = freshAddress()

  // from two clients, so the per-IP counters (RateLimit-Remaining) start equal
  const toTaken = await changeEmail(app, tokens.accessToken, { newEmail: taken.email, currentPassword: a.password }, { 'x-forwarded-for': '198.51.100.1' })
  const toFree = await changeEmail(app, control.accessToken, { newEmail: free, currentPassword: c.password }, { 'x-forwarded-for': '198.51.100.2' })
  const strip = (h: Record<string, unknown>) => { const { date: _d, ...rest } = h; return rest }
  t.equal(toTaken.statusCode, 202)
  t.equal(toTaken.statusCode, toFree.statusCode)
  t.equal(toTaken.body, toFree.body)
  t.same(strip(toTaken.headers), strip(toFree.headers), 'same headers')

  await linkAt(t, smtp, free)
  const notice = await smtp.next(a.email, REQUESTED)
  t.ok(assertNotice(t, notice, [a.password]).includes(taken.email), 'the current address is told, naming the address asked for')
  await nothingMore(t, app, smtp, taken.email, undefined, 'the taken address gets nothing')
  t.same((await outboxTo(taken.email)).map(r => r.kind), ['verify_email'], 'nothing was even queued for it')
  await nothingMore(t, app, smtp, a.email, undefined, 'one notice to the current address')

  t.equal((await me(app, tokens.accessToken)).json().email, a.email, 'nothing changed for the asker')
  t.equal((await me(app, owner.accessToken)).json().email, taken.email, 'nor for the owner')
})

t.test('a wrong current password: 403 current_password_incorrect, nothing sent, counted toward the per-account limit', async t => {
  const smtp = await smtpServer(t)
  const app = await mailApp(t, smtp, { RATE_LIMIT_LOGIN_ACCOUNT: '3' })
  const { account: a, tokens } = await account(app, smtp)
  const newEmail = freshAddress()

  assertProblem(t, await login(app, { email: a.email, password: 'one wrong sign-in' }), 401, 'invalid_credentials')
  const wrong = assertProblem(t, await changeEmail(app, tokens.accessToken, { newEmail, currentPassword: 'not the password' }), 403, 'current_password_incorrect')
  t.equal(wrong.errors[0].path, '/currentPassword')
  assertProblem(t, await call(app, 'POST', '/me/password', tokens.accessToken, { currentPassword: 'wrong again', newPassword: 'a perfectly fine new passphrase' }), 403, 'current_password_incorrect')

  // the third failure locked the account: the right password now waits, like a sign-in
  const locked = await changeEmail(app, tokens.accessToken, { newEmail, currentPassword: a.password })
  assertProblem(t, locked, 429, 'too_many_requests')
  t.ok(Number(locked.headers['retry-after']) > 0)
  assertProblem(t, await login(app, { email: a.email, password: a.password }), 429, 'too_many_requests') // sign-in shares the count

  await nothingMore(t, app, smtp, newEmail, undefined, 'no link')
  await nothingMore(t, app, smtp, a.email, undefined, 'no notice')
  t.same(await rows(sql`select id from email_tokens where user_id = ${tokens.user.id} and purpose = 'email_change'`), [], 'no token made')
  t.match(auditLines(app, 'email_change_failed').at(0), { userId: tokens.user.id, code: 'current_password_incorrect' })
  t.notOk(app.logs.join('').includes('not the password'), 'the wrong password is not logged')

  // a right password clears the count
  const { account: b, tokens: theirs } = await account(app, smtp)
  assertProblem(t, await changeEmail(app, theirs.accessToken, { newEmail, currentPassword: 'wrong once' }), 403, 'current_password_incorrect')
  assertProblem(t, await changeEmail(app, theirs.accessToken, { newEmail, currentPassword: 'wrong twice' }), 403, 'current_password_incorrect')
  t.equal((await changeEmail(app, theirs.accessToken, { newEmail, currentPassword: b.password })).statusCode, 202)
  assertProblem(t, await login(app, { email: b.email, password: 'wrong after' }), 401, 'invalid_credentials')
  assertProblem(t, await login(app, { email: b.email, password: 'wrong after that' }), 401, 'invalid_credentials')
})

t.test('a newer request voids the older link, whether or not its address is free', async t => {
  const smtp = await smtpServer(t)
  const clock = fakeClock()
  const app = await mailApp(t, smtp, {}, clock)
  const { account: a, tokens } = await account(app, smtp)
  const { account: taken } = await account(app, smtp)
  const [one, two, three] = [freshAddress(), freshAddress(), freshAddress()]
  const ask = (newEmail: string) => changeEmail(app, tokens.accessToken, { newEmail, currentPassword: a.password })

  t.equal((await ask(one)).statusCode, 202)
  const first = (await linkAt(t, smtp, one)).token
  t.ok(assertNotice(t, await smtp.next(a.email, REQUESTED)).includes(one))
  clock.advance(1000)
  t.equal((await ask(two)).statusCode, 202)
  const second = (await linkAt(t, smtp, two)).token
  t.ok(assertNotice(t, await smtp.next(a.email, REQUESTED)).includes(two))
  t.not(first, second)
  assertProblem(t, await confirmChange(app, first), 400, 'email_change_token_invalid')

  // a request for a taken address sends no link, and still voids the last one
  clock.advance(1000)
  t.equal((await ask(taken.email)).statusCode, 202)
  t.ok(assertNotice(t, await smtp.next(a.email, REQUESTED)).includes(taken.email))
  assertProblem(t, await confirmChange(app, second), 400, 'email_change_token_invalid')
  t.equal((await me(app, tokens.accessToken)).json().email, a.email, 'no voided link changed anything')

  clock.advance(1000)
  t.equal((await ask(three)).statusCode, 202)
  const third = (await linkAt(t, smtp, three)).token
  t.equal((await confirmChange(app, third)).statusCode, 204)
  t.equal((await signIn(app, { email: three, password: a.password })).user.id, tokens.user.id)
  for (const stale of [one, two]) assertProblem(t, await login(app, { email: stale, password: a.password }), 401, 'invalid_credentials')
  assertProblem(t, await confirmChange(app, first), 400, 'email_change_token_invalid')
})

t.test('two requests within one millisecond: only the newer link works', async t => {
  const smtp = await smtpServer(t)
  const clock = fakeClock()
  const app = await mailApp(t, smtp, {}, clock)
  const { account: a, tokens } = await account(app, smtp)
  const [one, two] = [freshAddress(), freshAddress()]
  t.equal((await changeEmail(app, tokens.accessToken, { newEmail: one, currentPassword: a.password })).statusCode, 202)
  const first = (await linkAt(t, smtp, one)).token
  t.equal((await changeEmail(app, tokens.accessToken, { newEmail: two, currentPassword: a.password })).statusCode, 202)
  const second = (await linkAt(t, smtp, two)).token
  assertProblem(t, await confirmChange(app, first), 400, 'email_change_token_invalid')
  t.equal((await confirmChange(app, second)).statusCode, 204)
  t.equal((await userRow(tokens.user.id)).email, two)
})

t.test('one link followed twice at once: one 204, one 400, one last notice', async t => {
  const smtp = await smtpServer(t)
  const app = await mailApp(t, smtp)
  const { account: a, tokens } = await account(app, smtp)
  const newEmail = freshAddress()
  t.equal((await changeEmail(app, tokens.accessToken, { newEmail, currentPassword: a.password })).statusCode, 202)
  const { token } = await linkAt(t, smtp, newEmail)
  await smtp.next(a.email, REQUESTED)
  const answers = await Promise.all([confirmChange(app, token), confirmChange(app, token)])
  t.same(answers.map(r => r.statusCode).sort(), [204, 400])
  await smtp.next(a.email, CHANGED)
  await nothingMore(t, app, smtp, a.email, CHANGED, 'one last notice')
  t.equal(auditLines(app, 'email_changed').length, 1)
})

t.test('a link expires after EMAIL_CHANGE_TOKEN_TTL: 3600 s by default, or as set', async t => {
  const smtp = await smtpServer(t)
  const clock = fakeClock()
  const app = await mailApp(t, smtp, {}, clock)
  const late = await account(app, smtp)
  const inTime = await account(app, smtp)
  const [lateEmail, inTimeEmail] = [freshAddress(), freshAddress()]

  t.equal((await changeEmail(app, late.tokens.accessToken, { newEmail: lateEmail, currentPassword: late.account.password })).statusCode, 202)
  const lateLink = await linkAt(t, smtp, lateEmail)
  t.match(lateLink.mail.text, /works once, for 60 minutes/)
  clock.advance(1000)
  t.equal((await changeEmail(app, inTime.tokens.accessToken, { newEmail: inTimeEmail, currentPassword: inTime.account.password })).statusCode, 202)
  const inTimeLink = await linkAt(t, smtp, inTimeEmail)

  // an hour after the first request: its link has just expired; the second has a second left
  clock.advance(HOUR - 1000)
  assertProblem(t, await confirmChange(app, lateLink.token), 400, 'email_change_token_invalid')
  t.match(await userRow(late.tokens.user.id), { email: late.account.email, verified: false }, 'an expired link changes nothing')
  t.equal((await confirmChange(app, inTimeLink.token)).statusCode, 204)
  t.equal((await userRow(inTime.tokens.user.id)).email, inTimeEmail)
  await nothingMore(t, app, smtp, late.account.email, CHANGED, 'no change notice for an expired link')

  // as set
  const shortClock = fakeClock()
  const short = await mailApp(t, smtp, { EMAIL_CHANGE_TOKEN_TTL: '600' }, shortClock)
  const s = await account(short, smtp)
  const sEmail = freshAddress()
  t.equal((await changeEmail(short, s.tokens.accessToken, { newEmail: sEmail, currentPassword: s.account.password })).statusCode, 202)
  const sLink = await linkAt(t, smtp, sEmail)
  t.match(sLink.mail.text, /works once, for 10 minutes/)
  shortClock.advance(600_000)
  assertProblem(t, await confirmChange(short, sLink.token), 400, 'email_change_token_invalid')
  t.equal((await userRow(s.tokens.user.id)).email, s.account.email)
})

t.test('another account takes the address before the link is followed: 409 email_taken, and nothing changes', async t => {
  const smtp = await smtpServer(t)
  const app = await mailApp(t, smtp)
  const { account: a, tokens } = await account(app, smtp)
  const other = await signIn(app, a)
  const wanted = freshAddress()
  t.equal((await changeEmail(app, tokens.accessToken, { newEmail: wanted, currentPassword: a.password })).statusCode, 202)
  const { token } = await linkAt(t, smtp, wanted)
  await smtp.next(a.email, REQUESTED)
  const before = await userRow(tokens.user.id)

  // someone registers with it meanwhile
  await register(app, newAccount({ email: wanted }))
  await smtp.next(wanted, VERIFY)
  assertProblem(t, await confirmChange(app, token), 409, 'email_taken')
  t.same(await userRow(tokens.user.id), before, 'the account is as it was')
  for (const session of [tokens, other]) t.equal((await me(app, session.accessToken)).json().email, a.email, 'every session still lives')
  t.equal((await login(app, { email: a.email, password: a.password })).statusCode, 200, 'the old address still signs in')
  await nothingMore(t, app, smtp, a.email, undefined, 'no change notice')
  await nothingMore(t, app, smtp, wanted, undefined, 'nothing to the address')
  t.same(auditLines(app, 'email_changed'), [])

  // the same race through two changes of email: the first to follow its link wins
  const { account: b, tokens: bTokens } = await account(app, smtp)
  const { account: c, tokens: cTokens } = await account(app, smtp)
  const both = freshAddress()
  t.equal((await changeEmail(app, bTokens.accessToken, { newEmail: both, currentPassword: b.password })).statusCode, 202)
  const bLink = (await linkAt(t, smtp, both)).token
  t.equal((await changeEmail(app, cTokens.accessToken, { newEmail: both, currentPassword: c.password })).statusCode, 202)
  const cLink = (await linkAt(t, smtp, both)).token
  t.equal((await confirmChange(app, cLink)).statusCode, 204)
  const cBefore = await userRow(bTokens.user.id)
  assertProblem(t, await confirmChange(app, bLink), 409, 'email_taken')
  t.same(await userRow(bTokens.user.id), cBefore)
  t.equal((await me(app, bTokens.accessToken)).statusCode, 200, 'the loser stays signed in')
  t.equal((await userRow(cTokens.user.id)).email, both)
})

t.test('after the change the links sent to the old address are dead, and a reset still queued for it is not sent', async t => {
  const smtp = await smtpServer(t)
  const clock = fakeClock()
  const app = await mailApp(t, smtp, {}, clock)

  // links that arrived at the old address
  const { account: a, tokens, verifyToken } = await account(app, smtp)
  t.equal((await forgotPassword(app, a.email)).statusCode, 202)
  const resetToken = tokenFrom(await smtp.next(a.email, RESET), APP_URL, '/reset-password')
  const newA = freshAddress()
  t.equal((await changeEmail(app, tokens.accessToken, { newEmail: newA, currentPassword: a.password })).statusCode, 202)
  t.equal((await confirmChange(app, (await linkAt(t, smtp, newA)).token)).statusCode, 204)
  assertProblem(t, await resetPassword(app, resetToken, 'a new passphrase through an old link'), 400, 'reset_token_invalid')
  assertProblem(t, await verifyEmail(app, verifyToken), 400, 'verification_token_invalid')
  t.equal((await signIn(app, { email: newA, password: a.password })).user.id, tokens.user.id, 'the password is unchanged')

  // the old address asks for nothing any more; the new one does
  t.equal((await forgotPassword(app, a.email)).statusCode, 202)
  await nothingMore(t, app, smtp, a.email, RESET, 'no reset mail to the old address')
  t.equal((await forgotPassword(app, newA)).statusCode, 202)
  const fresh = tokenFrom(await smtp.next(newA, RESET), APP_URL, '/reset-password')
  t.equal((await resetPassword(app, fresh, 'a new passphrase for the new address')).statusCode, 204)

  // a reset mail that could not leave yet (the mail server was down) is not sent once the address changed
  const { account: b, tokens: bTokens } = await account(app, smtp)
  await smtp.stop()
  t.equal((await forgotPassword(app, b.email)).statusCode, 202)
  await app.mailer.flush()
  t.match((await outboxTo(b.email)).filter(r => r.kind === 'password_reset'), [{ status: 'pending' }])
  await smtp.start()
  const newB = freshAddress()
  t.equal((await changeEmail(app, bTokens.accessToken, { newEmail: newB, currentPassword: b.password })).statusCode, 202)
  t.equal((await confirmChange(app, (await linkAt(t, smtp, newB)).token)).statusCode, 204)
  clock.advance(60_000)
  await nothingMore(t, app, smtp, b.email, RESET, 'the queued reset mail is not sent')
  t.match((await outboxTo(b.email)).filter(r => r.kind === 'password_reset'), [{ status: 'skipped' }])
})

t.test('an account without a password (made through an identity provider): a sign-in within ten minutes stands in for currentPassword', async t => {
  const smtp = await smtpServer(t)
  const clock = fakeClock()
  const app = await build(t, { env: oidcEnv({ test: op }, { SMTP_URL: smtp.url, APP_URL }), clock })
  const someone = person(op)
  const { tokens } = await signInWith(app, op, someone.sub)
  t.same(await rows(sql`select password_hash is null as no_password from users where id = ${tokens.user.id}`), [{ no_password: true }])
  const newEmail = freshAddress()

  assertProblem(t, await changeEmail(app, tokens.accessToken, { newEmail, currentPassword: 'a password it never had' }), 403, 'current_password_incorrect')
  clock.advance(WINDOW)
  const res = await changeEmail(app, tokens.accessToken, { newEmail })
  t.equal(res.statusCode, 202, 'ten minutes after the sign-in is still recent')
  const { token } = await linkAt(t, smtp, newEmail)
  t.ok(assertNotice(t, await smtp.next(someone.email!, REQUESTED)).includes(newEmail))

  // a sign-in older than ten minutes does not do (a refresh does not renew it); a new one does
  const late = person(op)
  const lateTokens = (await signInWith(app, op, late.sub)).tokens
  clock.advance(WINDOW + 1000)
  const refreshed = (await refresh(app, lateTokens.refreshToken)).json() as TokenBody
  const lateEmail = freshAddress()
  for (const accessToken of [lateTokens.accessToken, refreshed.accessToken]) {
    assertProblem(t, await changeEmail(app, accessToken, { newEmail: lateEmail }), 403, 'reauthentication_required')
  }
  await nothingMore(t, app, smtp, lateEmail, undefined, 'no link')
  await nothingMore(t, app, smtp, late.email!, undefined, 'no notice')
  t.match(auditLines(app, 'email_change_failed').at(-1), { userId: lateTokens.user.id, code: 'reauthentication_required' })
  const again = (await signInWith(app, op, late.sub)).tokens
  t.equal((await changeEmail(app, again.accessToken, { newEmail: lateEmail })).statusCode, 202)
  await linkAt(t, smtp, lateEmail)

  // the first link still works (its hour is not over); the provider still signs the account in
  t.equal((await confirmChange(app, token)).statusCode, 204)
  const after = (await signInWith(app, op, someone.sub)).tokens
  t.equal(after.user.id, tokens.user.id)
  t.match((await me(app, after.accessToken)).json(), { email: newEmail, emailVerified: true })
  t.ok(assertNotice(t, await smtp.next(someone.email!, CHANGED)).includes(newEmail))
})

t.test('bad input: clear 400s (or 401 without a token), nothing queued; tokens of other links are refused here and this one elsewhere', async t => {
  const smtp = await smtpServer(t)
  const app = await mailApp(t, smtp)
  const { account: a, tokens, verifyToken } = await account(app, smtp)
  const queued = (await rows(sql`select id from outbox`)).length
  const ask = (body: Record<string, unknown>) => changeEmail(app, tokens.accessToken, body)

  const notAnAddress = assertProblem(t, await ask({ newEmail: 'not an address', currentPassword: a.password }), 400, 'validation_failed')
  t.equal(notAnAddress.errors[0].path, '/newEmail')
  for (const same of [a.email, a.email.toUpperCase()]) {
    const body = assertProblem(t, await ask({ newEmail: same, currentPassword: a.password }), 400, 'validation_failed')
    t.same(body.errors, [{ path: '/newEmail', message: 'is the current address' }])
    t.match(body.detail, /already the email address/)
  }
  const missing = assertProblem(t, await ask({ newEmail: freshAddress() }), 400, 'validation_failed')
  t.equal(missing.errors[0].path, '/currentPassword', 'an account with a password is asked for it')
  for (const body of [{}, { currentPassword: a.password }, { newEmail: 42, currentPassword: a.password }, { newEmail: freshAddress(), currentPassword: a.password, extra: true }]) {
    assertProblem(t, await ask(body), 400, 'validation_failed')
  }
  assertProblem(t, await app.inject({ method: 'POST', url: '/me/email', payload: { newEmail: freshAddress(), currentPassword: a.password } }), 401, 'invalid_token')

  for (const payload of [{}, { token: 7 }, { token: 'x'.repeat(513) }, { token: 'x', extra: 1 }]) {
    assertProblem(t, await app.inject({ method: 'POST', url: '/email/change/confirm', payload }), 400, 'validation_failed')
  }
  for (const bad of ['', 'x', 'A'.repeat(43), verifyToken]) assertProblem(t, await confirmChange(app, bad), 400, 'email_change_token_invalid')
  await app.mailer.flush()
  t.equal((await rows(sql`select id from outbox`)).length, queued, 'nothing queued')
  t.equal(smtp.countTo(a.email), 0)

  // a change link is only for this route, and the verification link was not spent by trying it here
  const newEmail = freshAddress()
  t.equal((await ask({ newEmail, currentPassword: a.password })).statusCode, 202)
  const { token } = await linkAt(t, smtp, newEmail)
  assertProblem(t, await verifyEmail(app, token), 400, 'verification_token_invalid')
  assertProblem(t, await resetPassword(app, token, 'a new passphrase via the wrong link'), 400, 'reset_token_invalid')
  t.equal((await verifyEmail(app, verifyToken)).statusCode, 204)
  t.equal((await confirmChange(app, token)).statusCode, 204)

  // the page the link opens in development
  const page = await app.inject({ url: `/confirm-email?token=${token}` })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /text\/html/)
  t.notOk(app.logs.join('').includes(token), 'the page request logs no token')
})
