import { randomBytes } from 'node:crypto'
import type { PublicKeyCredentialCreationOptionsJSON } from '@simplewebauthn/server'
import { sql } from 'drizzle-orm'
import t from 'tap'
import {
  assertProblem, build, call, fakeClock, forgotPassword, login, loginMfa, mfaTokenOf, post, refresh, register,
  resetPassword, rows, signIn, totp, totpAccount, wrongCode, type FakeClock, type Test, type TestApp, type TokenBody,
} from './helper.js'
import { assertNotice, smtpServer, tokenFrom } from './smtp.js'
import { softAuthenticator } from './webauthn-authenticator.js'

// The security notices, end to end through a real SMTP server: each event sends its notice once, in
// plain text and HTML, to the account's address, and none carries a token, a code or a secret.
// A refused attempt sends nothing; neither do the events that have no notice.

const APP_URL = 'https://app.example.test'
const VERIFY = 'Verify your email address'
const RESET = 'Reset your password'
const STEP = 30_000
const SUBJECT = {
  password_changed: 'Your password was changed',
  password_reset: 'Your password was reset',
  email_change_requested: 'A change of your email address was asked for',
  email_changed: 'Your email address was changed',
  mfa_enabled: 'Two-factor sign-in was turned on',
  mfa_disabled: 'Two-factor sign-in was turned off',
  recovery_codes_regenerated: 'New recovery codes were made',
  recovery_code_used: 'A recovery code was used',
  passkey_added: 'A passkey was added',
  account_suspended: 'Your account was suspended',
} as const
type Notice = keyof typeof SUBJECT

type Smtp = Awaited<ReturnType<typeof smtpServer>>
async function setup (t: Test, clock: FakeClock = fakeClock()) {
  const smtp = await smtpServer(t)
  const app = await build(t, { env: { SMTP_URL: smtp.url, APP_URL, MAIL_FROM: 'Example Auth <auth@example.test>' }, clock })
  return { smtp, app, clock }
}

/** A new account whose verification mail has arrived, so its inbox holds only what the test causes. */
async function account (app: TestApp, smtp: Smtp) {
  const { body, tokens } = await register(app)
  await smtp.next(body.email, VERIFY)
  return { account: body, tokens }
}

/** An account with TOTP on, its verification mail and its mfa_enabled notice taken. */
async function twoFactorAccount (app: TestApp, smtp: Smtp) {
  const a = await totpAccount(app)
  await smtp.next(a.account.email, VERIFY)
  await smtp.next(a.account.email, SUBJECT.mfa_enabled)
  return a
}

/** Everything due sent (twice over, so nothing is still on its way). */
async function settle (app: TestApp) {
  await app.mailer.flush()
  await app.mailer.flush()
}

/**
 * The notice arrives at `to`, shaped as a notice must be (assertNotice) and from MAIL_FROM; once all is
 * sent no second copy follows. Returns its plain text.
 */
async function noticeOnce (t: Test, app: TestApp, smtp: Smtp, to: string, notice: Notice, secrets: string[] = []) {
  const mail = await smtp.next(to, SUBJECT[notice])
  t.equal(mail.from?.value[0]?.address, 'auth@example.test')
  const text = assertNotice(t, mail, secrets)
  await settle(app)
  t.equal(smtp.countTo(to, SUBJECT[notice]), 0, `"${SUBJECT[notice]}" arrives once`)
  return text
}

/** After everything due is sent: nothing (more) arrived at `to`. */
async function nothingTo (t: Test, app: TestApp, smtp: Smtp, to: string, why: string) {
  await settle(app)
  t.equal(smtp.countTo(to), 0, why)
}

/** The notices queued for `to`, as the outbox holds them (what the sender renders), in name order. */
const queuedNotices = async (to: string) => (await rows<{ data: Record<string, string> }>(sql`select data from outbox where kind = 'notice' and recipient = ${to}`))
  .map(r => r.data).sort((x, y) => String(x.notice).localeCompare(String(y.notice)))

async function admin (app: TestApp, smtp: Smtp) {
  const { tokens } = await account(app, smtp)
  await rows(sql`update users set role = 'admin' where id = ${tokens.user.id}`)
  return (await refresh(app, tokens.refreshToken)).json() as TokenBody
}

t.test('password changed: one notice; a refused change sends none', async t => {
  const { smtp, app } = await setup(t)
  const { account: a, tokens } = await account(app, smtp)
  const newPassword = 'a perfectly fine new passphrase'
  const change = (currentPassword: string, password: string) => call(app, 'POST', '/me/password', tokens.accessToken, { currentPassword, newPassword: password })

  assertProblem(t, await change('not the password', newPassword), 403, 'current_password_incorrect')
  assertProblem(t, await change(a.password, 'short'), 400, 'password_too_short')
  await nothingTo(t, app, smtp, a.email, 'no notice for a refused change')

  t.equal((await change(a.password, newPassword)).statusCode, 204)
  const text = await noticeOnce(t, app, smtp, a.email, 'password_changed', [a.password, newPassword, tokens.accessToken, tokens.refreshToken])
  t.match(text, /password of your account was just changed/)
  await nothingTo(t, app, smtp, a.email, 'nothing else')
  t.same(await queuedNotices(a.email), [{ notice: 'password_changed' }])
})

t.test('password reset: the notice once the new password is set, not at the request; a refused password sends none', async t => {
  const { smtp, app } = await setup(t)
  const { account: a } = await account(app, smtp)
  t.equal((await forgotPassword(app, a.email)).statusCode, 202)
  const token = tokenFrom(await smtp.next(a.email, RESET), APP_URL, '/reset-password')
  await nothingTo(t, app, smtp, a.email, 'the request sends the link only')

  assertProblem(t, await resetPassword(app, token, 'short'), 400, 'password_too_short')
  assertProblem(t, await resetPassword(app, 'A'.repeat(43), 'a long enough new passphrase'), 400, 'reset_token_invalid')
  await nothingTo(t, app, smtp, a.email, 'no notice for a refused reset')

  const newPassword = 'a brand new passphrase after the reset'
  t.equal((await resetPassword(app, token, newPassword)).statusCode, 204)
  const text = await noticeOnce(t, app, smtp, a.email, 'password_reset', [token, newPassword, a.password])
  t.match(text, /just reset through an emailed link/)
  t.same(await queuedNotices(a.email), [{ notice: 'password_reset' }])
})

t.test('change of email: a notice to the current address at the request, naming the new one, and one to the old at the change', async t => {
  const { smtp, app } = await setup(t)
  const { account: a, tokens } = await account(app, smtp)
  const newEmail = `notice${process.pid}x${randomBytes(3).toString('hex')}@example.net`
  t.equal((await call(app, 'POST', '/me/email', tokens.accessToken, { newEmail, currentPassword: a.password })).statusCode, 202)
  const token = tokenFrom(await smtp.next(newEmail, 'Confirm your new email address'), APP_URL, '/confirm-email')
  t.ok((await noticeOnce(t, app, smtp, a.email, 'email_change_requested', [token, a.password])).includes(newEmail))

  t.equal((await post(app, '/email/change/confirm', { token })).statusCode, 204)
  t.ok((await noticeOnce(t, app, smtp, a.email, 'email_changed', [token])).includes(newEmail))
  await nothingTo(t, app, smtp, a.email, 'nothing else to the old address')
  await nothingTo(t, app, smtp, newEmail, 'no notice to the new address')
  t.same(await queuedNotices(a.email), [{ notice: 'email_change_requested', newEmail }, { notice: 'email_changed', newEmail }])
})

t.test('two-factor sign-in turned on: one notice, without the secret or a recovery code; enrolling alone sends none', async t => {
  const { smtp, app, clock } = await setup(t)
  const { account: a, tokens } = await account(app, smtp)
  const enrolled = await call(app, 'POST', '/mfa/totp/enroll', tokens.accessToken)
  t.equal(enrolled.statusCode, 200)
  const { secret } = enrolled.json() as { secret: string }
  assertProblem(t, await call(app, 'POST', '/mfa/totp/confirm', tokens.accessToken, { code: wrongCode(secret, clock.now()) }), 403, 'mfa_code_invalid')
  await nothingTo(t, app, smtp, a.email, 'no notice before the confirmation')

  const code = totp(secret, clock.now())
  const confirmed = await call(app, 'POST', '/mfa/totp/confirm', tokens.accessToken, { code })
  t.equal(confirmed.statusCode, 200)
  const { recoveryCodes } = confirmed.json() as { recoveryCodes: string[] }
  await noticeOnce(t, app, smtp, a.email, 'mfa_enabled', [secret, code, ...recoveryCodes, tokens.accessToken])
  t.same(await queuedNotices(a.email), [{ notice: 'mfa_enabled' }])
})

t.test('recovery codes made anew with a current code: one notice, none of the old or new codes in it; a wrong code sends none', async t => {
  const { smtp, app, clock } = await setup(t)
  const { account: a, tokens, secret, recoveryCodes } = await twoFactorAccount(app, smtp)
  clock.advance(STEP)
  assertProblem(t, await call(app, 'POST', '/mfa/recovery-codes', tokens.accessToken, { code: wrongCode(secret, clock.now()) }), 403, 'mfa_code_invalid')
  await nothingTo(t, app, smtp, a.email, 'no notice for a wrong code')

  const code = totp(secret, clock.now())
  const res = await call(app, 'POST', '/mfa/recovery-codes', tokens.accessToken, { code })
  t.equal(res.statusCode, 200)
  const fresh = (res.json() as { recoveryCodes: string[] }).recoveryCodes
  await noticeOnce(t, app, smtp, a.email, 'recovery_codes_regenerated', [code, secret, ...recoveryCodes, ...fresh])
  await nothingTo(t, app, smtp, a.email, 'no recovery-code notice: a current code was used')
  t.same(await queuedNotices(a.email), [{ notice: 'mfa_enabled' }, { notice: 'recovery_codes_regenerated' }])
})

t.test('a recovery code used to sign in: one notice saying how many are left, without the code; a TOTP code or a wrong recovery code sends none', async t => {
  const { smtp, app, clock } = await setup(t)
  const { account: a, secret, recoveryCodes } = await twoFactorAccount(app, smtp)

  assertProblem(t, await loginMfa(app, { mfaToken: await mfaTokenOf(app, a), recoveryCode: 'zzzz-zzzz-zzzz' }), 403, 'mfa_code_invalid')
  clock.advance(STEP)
  t.equal((await loginMfa(app, { mfaToken: await mfaTokenOf(app, a), code: totp(secret, clock.now()) })).statusCode, 200)
  await nothingTo(t, app, smtp, a.email, 'no notice for a TOTP code or a wrong recovery code')

  const mfaToken = await mfaTokenOf(app, a)
  const res = await loginMfa(app, { mfaToken, recoveryCode: recoveryCodes[0] })
  t.equal(res.statusCode, 200)
  const signedIn = res.json() as TokenBody
  const text = await noticeOnce(t, app, smtp, a.email, 'recovery_code_used', [mfaToken, secret, a.password, signedIn.accessToken, signedIn.refreshToken, ...recoveryCodes])
  t.match(text, /9 unused recovery codes are left/)
  t.same(await queuedNotices(a.email), [{ notice: 'mfa_enabled' }, { notice: 'recovery_code_used', recoveryCodesLeft: '9' }])
})

t.test('a recovery code used on the second-factor routes: a notice for the code and one for what it did, each once', async t => {
  const { smtp, app } = await setup(t)
  const { account: a, tokens, secret, recoveryCodes } = await twoFactorAccount(app, smtp)

  const regenerated = await call(app, 'POST', '/mfa/recovery-codes', tokens.accessToken, { code: recoveryCodes[0] })
  t.equal(regenerated.statusCode, 200)
  const fresh = (regenerated.json() as { recoveryCodes: string[] }).recoveryCodes
  const secrets = [secret, ...recoveryCodes, ...fresh]
  await noticeOnce(t, app, smtp, a.email, 'recovery_code_used', secrets)
  await noticeOnce(t, app, smtp, a.email, 'recovery_codes_regenerated', secrets)

  t.equal((await call(app, 'DELETE', '/mfa/totp', tokens.accessToken, { code: fresh[0] })).statusCode, 204)
  await noticeOnce(t, app, smtp, a.email, 'recovery_code_used', secrets)
  await noticeOnce(t, app, smtp, a.email, 'mfa_disabled', secrets)
  await nothingTo(t, app, smtp, a.email, 'nothing else')
  t.same((await queuedNotices(a.email)).map(n => n.notice), ['mfa_disabled', 'mfa_enabled', 'recovery_code_used', 'recovery_code_used', 'recovery_codes_regenerated'])
})

t.test('two-factor sign-in turned off, with a code or by an admin: one notice each; a wrong code, or nothing to remove, sends none', async t => {
  const { smtp, app, clock } = await setup(t)
  const { account: a, tokens, secret, recoveryCodes } = await twoFactorAccount(app, smtp)
  clock.advance(STEP)
  assertProblem(t, await call(app, 'DELETE', '/mfa/totp', tokens.accessToken, { code: wrongCode(secret, clock.now()) }), 403, 'mfa_code_invalid')
  await nothingTo(t, app, smtp, a.email, 'no notice for a wrong code')
  const code = totp(secret, clock.now())
  t.equal((await call(app, 'DELETE', '/mfa/totp', tokens.accessToken, { code })).statusCode, 204)
  const text = await noticeOnce(t, app, smtp, a.email, 'mfa_disabled', [code, secret, ...recoveryCodes])
  t.match(text, /turned off/)

  const boss = await admin(app, smtp)
  const target = await twoFactorAccount(app, smtp)
  t.equal((await call(app, 'DELETE', `/admin/users/${target.tokens.user.id}/mfa`, boss.accessToken)).statusCode, 204)
  await noticeOnce(t, app, smtp, target.account.email, 'mfa_disabled', [target.secret, ...target.recoveryCodes, boss.accessToken])
  const plain = await account(app, smtp)
  t.equal((await call(app, 'DELETE', `/admin/users/${plain.tokens.user.id}/mfa`, boss.accessToken)).statusCode, 204)
  await nothingTo(t, app, smtp, plain.account.email, 'nothing removed, no notice')
  t.same(await queuedNotices(plain.account.email), [])
  await nothingTo(t, app, smtp, boss.user.email, 'nothing to the admin')
})

t.test('a passkey added: one notice naming it (escaped in the HTML), without the credential; a refused registration sends none', async t => {
  const { smtp, app } = await setup(t)
  const { account: a, tokens } = await account(app, smtp)
  const authenticator = softAuthenticator()
  const options = async () => (await call(app, 'POST', '/passkeys/register/options', tokens.accessToken)).json() as PublicKeyCredentialCreationOptionsJSON

  const refused = authenticator.register(await options(), { origin: 'https://evil.example' })
  assertProblem(t, await call(app, 'POST', '/passkeys/register', tokens.accessToken, { response: refused }), 400, 'passkey_invalid')
  await nothingTo(t, app, smtp, a.email, 'no notice for a refused registration')

  const creation = await options()
  const response = authenticator.register(creation, { origin: APP_URL })
  const name = 'Work "laptop" <b>'
  const res = await call(app, 'POST', '/passkeys/register', tokens.accessToken, { response, name })
  t.equal(res.statusCode, 201, res.body)
  const mail = await smtp.next(a.email, SUBJECT.passkey_added)
  const text = assertNotice(t, mail, [response.id, response.response.attestationObject, response.response.clientDataJSON, creation.challenge, creation.user.id])
  t.ok(text.includes(`named "${name}"`), 'the text names it')
  t.notOk(String(mail.html).includes('<b>'), 'the HTML escapes it')
  t.ok(String(mail.html).includes('&#60;b&#62;'))
  await settle(app)
  t.equal(smtp.countTo(a.email, SUBJECT.passkey_added), 0, 'once')
  t.same(await queuedNotices(a.email), [{ notice: 'passkey_added', name }])
})

t.test('account suspended: one notice, with the end and the reason when given; lifting it, or a refused suspension, sends none', async t => {
  const { smtp, app } = await setup(t)
  const boss = await admin(app, smtp)
  const { account: a, tokens } = await account(app, smtp)
  const { account: b, tokens: bTokens } = await account(app, smtp)
  const suspend = (id: string, body: object, token = boss.accessToken) => call(app, 'POST', `/admin/users/${id}/suspend`, token, body)

  assertProblem(t, await suspend(tokens.user.id, {}, tokens.accessToken), 403, 'forbidden')
  assertProblem(t, await suspend(boss.user.id, {}), 409, 'cannot_suspend_self')
  await nothingTo(t, app, smtp, a.email, 'no notice for a refused suspension')
  await nothingTo(t, app, smtp, boss.user.email, 'nor to the admin')

  const until = new Date(app.clock() + 7 * 86_400_000).toISOString()
  t.equal((await suspend(tokens.user.id, { until, reason: 'Reported for abuse' })).statusCode, 204)
  const text = await noticeOnce(t, app, smtp, a.email, 'account_suspended', [tokens.accessToken, tokens.refreshToken, boss.accessToken])
  t.ok(text.includes(`until ${until}`), 'the end is named')
  t.ok(text.includes('Reason: Reported for abuse'), 'the reason is given')
  t.same(await queuedNotices(a.email), [{ notice: 'account_suspended', until, reason: 'Reported for abuse' }])

  t.equal((await suspend(bTokens.user.id, {})).statusCode, 204)
  const indefinite = await noticeOnce(t, app, smtp, b.email, 'account_suspended')
  t.notMatch(indefinite, /until|Reason/)
  t.equal((await call(app, 'DELETE', `/admin/users/${bTokens.user.id}/suspend`, boss.accessToken)).statusCode, 204)
  await nothingTo(t, app, smtp, b.email, 'no notice when it is lifted')
  await nothingTo(t, app, smtp, boss.user.email, 'nothing to the admin')
})

t.test('events without a notice send none: sign-in, refresh, profile, verification, sign-out, a session ended, a passkey removed', async t => {
  const { smtp, app } = await setup(t)
  const { body: a, tokens } = await register(app)
  const verifyToken = tokenFrom(await smtp.next(a.email, VERIFY), APP_URL, '/verify-email')
  const other = await signIn(app, a)
  t.equal((await refresh(app, other.refreshToken)).statusCode, 200)
  t.equal((await call(app, 'PATCH', '/me', tokens.accessToken, { name: 'A New Name' })).statusCode, 200)
  t.equal((await post(app, '/email/verify', { token: verifyToken })).statusCode, 204)
  assertProblem(t, await login(app, { email: a.email, password: 'a wrong password' }), 401, 'invalid_credentials')
  const third = await signIn(app, a)
  const { sessions } = (await call(app, 'GET', '/sessions', tokens.accessToken)).json() as { sessions: { id: string, current: boolean }[] }
  t.equal((await call(app, 'DELETE', `/sessions/${sessions.find(s => !s.current)!.id}`, tokens.accessToken)).statusCode, 204)
  t.equal((await post(app, '/logout', { refreshToken: third.refreshToken })).statusCode, 204)

  const creation = (await call(app, 'POST', '/passkeys/register/options', tokens.accessToken)).json() as PublicKeyCredentialCreationOptionsJSON
  const added = await call(app, 'POST', '/passkeys/register', tokens.accessToken, { response: softAuthenticator().register(creation, { origin: APP_URL }) })
  t.equal(added.statusCode, 201)
  await smtp.next(a.email, SUBJECT.passkey_added)
  t.equal((await call(app, 'DELETE', `/passkeys/${added.json().id}`, tokens.accessToken)).statusCode, 204)
  await nothingTo(t, app, smtp, a.email, 'no notice for any of these')
  t.same(await queuedNotices(a.email), [{ notice: 'passkey_added', name: 'Passkey' }])
})

t.test('a notice that cannot leave yet is retried, and still arrives once', async t => {
  const { smtp, app, clock } = await setup(t)
  const { account: a, tokens } = await account(app, smtp)
  await smtp.stop()
  const newPassword = 'a perfectly fine new passphrase'
  t.equal((await call(app, 'POST', '/me/password', tokens.accessToken, { currentPassword: a.password, newPassword })).statusCode, 204)
  await settle(app)
  const [row] = await rows<{ status: string, attempts: number }>(sql`select status, attempts from outbox where kind = 'notice' and recipient = ${a.email}`)
  t.match(row, { status: 'pending', attempts: 1 })
  await smtp.start()
  clock.advance(STEP)
  await noticeOnce(t, app, smtp, a.email, 'password_changed', [a.password, newPassword])
  clock.advance(STEP)
  await nothingTo(t, app, smtp, a.email, 'no second copy')
  t.match(app.logs.join(''), /"kind":"notice".*"msg":"outbox row not delivered; will retry"/)
})
