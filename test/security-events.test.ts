import { randomBytes } from 'node:crypto'
import type { PublicKeyCredentialCreationOptionsJSON, PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server'
import { sql, type SQL } from 'drizzle-orm'
import t from 'tap'
import {
  assertProblem, build, call, claims, fakeClock, forgotPassword, login, loginMfa, mfaTokenOf, newAccount, post, refresh, register, registerAdmin, rows, stub,
  totp, totpAccount, wrongCode, type Test, type TestApp, type TokenBody,
} from './helper.js'
import { callbackFor, exchange, mailedToken, oidcEnv, person, signInWith } from './oidc-flow.js'
import { startTestProvider } from './oidc-provider.js'
import { softAuthenticator, tamperSignature, type SoftAuthenticator } from './webauthn-authenticator.js'

// The security history: a row in audit_events for every security event, written with the change it
// records, read by the user (GET /me/security-events) and by admins (GET /admin/audit-events).

const op = await startTestProvider({ redirectUris: [callbackFor('test')] })
t.teardown(() => op.stop())

const ORIGIN = 'http://localhost:3000'
const STEP = 30_000
const IP = '203.0.113.7'
const UA = 'HistoryTest/1.0'
/** A client behind the trusted proxy: the IP and user agent every row of its requests carries. */
const H = { 'user-agent': UA, 'x-forwarded-for': IP }
const PROXY = { TRUST_PROXY: 'true' }
/** A wrong password is as secret as a right one (it is often one typo away). */
const WRONG = 'not the password at all'
const EVENT_KEYS = ['at', 'detail', 'id', 'ip', 'sessionId', 'type', 'userAgent']

/** Every secret the file's tests handle; the last test looks for each in every row. */
const secrets = new Set<string>()
const keep = (...values: (string | undefined | null)[]) => { for (const v of values) if (v) secrets.add(v) }
/** Six-digit codes: looked for in the details only, where no id could hold one by chance. */
const codes = new Set<string>()
const keepTokens = (tokens: TokenBody) => keep(tokens.accessToken, tokens.refreshToken)
keep(WRONG, 'wrong password one', 'wrong password two', 'whatever password')

interface EventRow {
  id: string, at_ms: number, type: string, user_id: string | null, actor_id: string | null, session_id: string | null, ip: string | null, user_agent: string | null, detail: Record<string, unknown>
}
const eventsWhere = (condition: SQL) => rows<EventRow>(sql`
  select id, extract(epoch from at)::float8 * 1000 as at_ms, type, user_id, actor_id, session_id, ip, user_agent, detail
  from audit_events where ${condition} order by id`)
const eventsOf = (userId: string, type?: string) => eventsWhere(type ? sql`user_id = ${userId} and type = ${type}` : sql`user_id = ${userId}`)
/** The one event of this type of this user. */
async function only (t: Test, userId: string, type: string) {
  const found = await eventsOf(userId, type)
  t.equal(found.length, 1, `one ${type}`)
  return found[0]
}
const sid = (tokens: { accessToken: string }) => claims(tokens.accessToken).sid as string
/** A user agent of its own: the rows of one request, whoever's they are. */
const probe = () => ({ 'user-agent': `Probe/${randomBytes(6).toString('hex')}`, 'x-forwarded-for': IP })
const byAgent = (headers: { 'user-agent': string }) => eventsWhere(sql`user_agent = ${headers['user-agent']}`)

const ok = <R extends { statusCode: number, body: string }>(res: R, status = 200): R => {
  if (res.statusCode !== status) throw new Error(`expected ${status}: ${res.statusCode} ${res.body}`)
  return res
}
const tokensOf = (res: { statusCode: number, body: string, json: () => unknown }, status = 200) => {
  const tokens = ok(res, status).json() as TokenBody
  keepTokens(tokens)
  return tokens
}

async function addPasskey (app: TestApp, token: string, authenticator: SoftAuthenticator, name: string) {
  const options = (await call(app, 'POST', '/passkeys/register/options', token)).json() as PublicKeyCredentialCreationOptionsJSON
  return ok(await call(app, 'POST', '/passkeys/register', token, { response: authenticator.register(options, { origin: ORIGIN }), name }, H), 201).json() as { id: string }
}
async function passkeyLogin (app: TestApp, authenticator: SoftAuthenticator, headers: Record<string, string>, tampered = false) {
  const options = (await app.inject({ method: 'POST', url: '/login/passkey/options' })).json() as PublicKeyCredentialRequestOptionsJSON
  const response = authenticator.authenticate(options, { origin: ORIGIN })
  return app.inject({ method: 'POST', url: '/login/passkey', headers, payload: { response: tampered ? tamperSignature(response) : response } })
}

/** Every page of GET /me/security-events (or another list) at `limit`, following nextCursor. */
async function allPages (app: TestApp, token: string, url: string, limit: number) {
  const pages: { events: { id: string, at: string, type: string, [k: string]: unknown }[], nextCursor: string | null }[] = []
  let cursor: string | null = null
  do {
    const sep = url.includes('?') ? '&' : '?'
    const res = await call(app, 'GET', `${url}${sep}limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`, token)
    const page = ok(res).json() as (typeof pages)[number]
    pages.push(page)
    cursor = page.nextCursor
  } while (cursor && pages.length < 100)
  return pages
}

t.test('password sign-ins and their refusals: method, code, session, IP, user agent; an unknown account has no user', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock, env: PROXY })
  const account = newAccount({ username: `h${randomBytes(4).toString('hex')}` })
  keep(account.password)
  const registered = tokensOf(await app.inject({ method: 'POST', url: '/register', headers: H, payload: account }), 201)
  const userId = registered.user.id
  t.match(await only(t, userId, 'register'), {
    at_ms: clock.now(), user_id: userId, actor_id: null, session_id: sid(registered), ip: IP, user_agent: UA, detail: { method: 'register', aal: 'aal1', amr: ['pwd'] },
  })

  clock.advance(1000)
  const signedIn = tokensOf(await login(app, { email: account.email, password: account.password }, H))
  const success = await only(t, userId, 'login_success')
  const { id, ...rest } = success!
  t.match(id, /^[0-9a-f-]{36}$/)
  t.same(rest, {
    at_ms: clock.now(),
    type: 'login_success',
    user_id: userId,
    actor_id: null,
    session_id: sid(signedIn),
    ip: IP,
    user_agent: UA,
    detail: { method: 'password', aal: 'aal1', amr: ['pwd'] },
  }, 'time, type, user, no actor, the new session, IP, user agent, and the method')

  clock.advance(1000)
  assertProblem(t, await login(app, { username: account.username, password: WRONG }, H), 401, 'invalid_credentials')
  t.match(await only(t, userId, 'login_failure'), { at_ms: clock.now(), session_id: null, ip: IP, user_agent: UA, detail: { method: 'password', code: 'invalid_credentials' } })

  // refusals for accounts that do not exist are kept too, with no user
  for (const body of [{ email: 'nobody-here@example.com', password: 'whatever password' }, { username: 'nobody_here', password: 'whatever password' }]) {
    const headers = probe()
    assertProblem(t, await login(app, body, headers), 401, 'invalid_credentials')
    t.match(await byAgent(headers), [{ type: 'login_failure', user_id: null, session_id: null, ip: IP, detail: { method: 'password', code: 'invalid_credentials' } }])
  }
})

t.test('the second factor: enabled, sign-ins by totp and recovery_code, a recovery code used, codes regenerated, disabled', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock, env: PROXY })
  const { account, tokens, secret, recoveryCodes } = await totpAccount(app)
  keep(account.password, secret, ...recoveryCodes)
  keepTokens(tokens)
  const userId = tokens.user.id
  t.match(await only(t, userId, 'mfa_enabled'), { session_id: sid(tokens), actor_id: null, detail: { method: 'totp', otherSessionsEnded: 0 } })

  clock.advance(STEP)
  const first = await mfaTokenOf(app, account, {}, H)
  keep(first)
  const code = totp(secret, clock.now())
  codes.add(code)
  const viaCode = tokensOf(await loginMfa(app, { mfaToken: first, code }, H))
  const successes = async () => (await eventsOf(userId, 'login_success')).filter(e => e.session_id !== sid(tokens))
  t.match(await successes(), [{ at_ms: clock.now(), session_id: sid(viaCode), ip: IP, user_agent: UA, detail: { method: 'totp', aal: 'aal2', amr: ['pwd', 'otp'] } }])

  clock.advance(1000)
  const second = await mfaTokenOf(app, account, {}, H)
  keep(second)
  const wrong = wrongCode(secret, clock.now())
  codes.add(wrong)
  assertProblem(t, await loginMfa(app, { mfaToken: second, code: wrong }, H), 403, 'mfa_code_invalid')
  t.match(await only(t, userId, 'login_failure'), { session_id: null, ip: IP, detail: { method: 'totp', code: 'mfa_code_invalid' } })

  clock.advance(1000)
  const viaRecovery = tokensOf(await loginMfa(app, { mfaToken: second, recoveryCode: recoveryCodes[0] }, H))
  t.match((await successes())[1], { session_id: sid(viaRecovery), detail: { method: 'recovery_code', aal: 'aal2', amr: ['pwd', 'rec'] } })
  t.match(await only(t, userId, 'recovery_code_used'), { session_id: sid(viaRecovery), ip: IP, user_agent: UA, detail: { route: 'login', recoveryCodesLeft: 9 } })

  clock.advance(STEP)
  const regenerateCode = totp(secret, clock.now())
  codes.add(regenerateCode)
  const regenerated = ok(await call(app, 'POST', '/mfa/recovery-codes', viaCode.accessToken, { code: regenerateCode }, H)).json() as { recoveryCodes: string[] }
  keep(...regenerated.recoveryCodes)
  t.match(await only(t, userId, 'recovery_codes_regenerated'), { session_id: sid(viaCode), ip: IP, user_agent: UA })

  clock.advance(1000)
  ok(await call(app, 'DELETE', '/mfa/totp', viaCode.accessToken, { code: regenerated.recoveryCodes[0] }, H), 204)
  t.match(await only(t, userId, 'mfa_disabled'), { session_id: sid(viaCode), ip: IP, detail: { method: 'totp' } })
  t.match((await eventsOf(userId, 'recovery_code_used'))[1], { at_ms: clock.now(), session_id: sid(viaCode), detail: { recoveryCodesLeft: 9 } })
})

t.test('passkeys: added, a sign-in with one, a refused assertion with no user, deleted', async t => {
  const app = await build(t, { env: PROXY })
  const { body: account, tokens } = await register(app)
  keep(account.password)
  keepTokens(tokens)
  const authenticator = softAuthenticator()
  const passkey = await addPasskey(app, tokens.accessToken, authenticator, 'Laptop')
  t.match(await only(t, tokens.user.id, 'passkey_added'), { session_id: sid(tokens), ip: IP, user_agent: UA, detail: { passkeyId: passkey.id, name: 'Laptop' } })

  const signedIn = tokensOf(await passkeyLogin(app, authenticator, H))
  t.match((await eventsOf(tokens.user.id, 'login_success')).find(e => e.session_id === sid(signedIn)), { ip: IP, user_agent: UA, detail: { method: 'passkey', aal: 'aal2', amr: ['hwk', 'user'] } })

  const headers = probe()
  assertProblem(t, await passkeyLogin(app, authenticator, headers, true), 401, 'invalid_credentials')
  t.match(await byAgent(headers), [{ type: 'login_failure', user_id: null, detail: { method: 'passkey', code: 'invalid_credentials' } }])

  ok(await call(app, 'DELETE', `/passkeys/${passkey.id}`, signedIn.accessToken, undefined, H), 204)
  t.match(await only(t, tokens.user.id, 'passkey_deleted'), { session_id: sid(signedIn), detail: { passkeyId: passkey.id } })
})

t.test('an identity provider: the account made, the sign-in with its provider, a refused code with no user', async t => {
  const app = await build(t, { env: { ...PROXY, ...oidcEnv({ test: op }) } })
  const someone = person(op)
  const { tokens, code, verifier } = await signInWith(app, op, someone.sub)
  keepTokens(tokens)
  keep(code, verifier)
  t.match(await only(t, tokens.user.id, 'register'), { session_id: null, detail: { method: 'provider', provider: 'test' } })
  t.match(await only(t, tokens.user.id, 'login_success'), { session_id: sid(tokens), detail: { method: 'provider', provider: 'test', aal: 'aal1', amr: ['fed'] } })

  const headers = probe()
  const bogus = { code: randomBytes(32).toString('base64url'), codeVerifier: randomBytes(32).toString('base64url') }
  keep(bogus.code, bogus.codeVerifier)
  assertProblem(t, await exchange(app, bogus, headers), 400, 'oauth_code_invalid')
  t.match(await byAgent(headers), [{ type: 'login_failure', user_id: null, ip: IP, detail: { method: 'provider', code: 'oauth_code_invalid' } }])
})

t.test('sessions: a refresh token reused, signing out here and everywhere, one session revoked', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock, env: PROXY })
  const { body: account, tokens: first } = await register(app)
  keep(account.password)
  keepTokens(first)
  const userId = first.user.id
  const [second, third, fourth] = [tokensOf(await login(app, account)), tokensOf(await login(app, account)), tokensOf(await login(app, account))]

  keepTokens(tokensOf(await refresh(app, first.refreshToken)))
  clock.advance(app.config.refresh.reuseGraceSeconds * 1000 + 1000)
  assertProblem(t, await refresh(app, first.refreshToken, H), 401, 'refresh_token_reused')
  t.match(await only(t, userId, 'refresh_reuse'), { at_ms: clock.now(), session_id: sid(first), ip: IP, user_agent: UA, detail: { sessionRevoked: true } })

  clock.advance(1000)
  ok(await post(app, '/logout', { refreshToken: second!.refreshToken }, H), 204)
  t.match(await only(t, userId, 'logout'), { session_id: sid(second!), ip: IP, user_agent: UA, detail: { scope: 'local' } })

  clock.advance(1000)
  ok(await call(app, 'DELETE', `/sessions/${sid(third!)}`, fourth!.accessToken, undefined, H), 204)
  t.match(await only(t, userId, 'session_revoked'), { session_id: sid(fourth!), ip: IP, detail: { revokedSessionId: sid(third!), current: false } })

  clock.advance(1000)
  const fifth = tokensOf(await login(app, account))
  ok(await call(app, 'POST', '/logout', fourth!.accessToken, { scope: 'global' }, H), 204)
  t.match((await eventsOf(userId, 'logout'))[1], { at_ms: clock.now(), session_id: sid(fourth!), detail: { scope: 'global', sessionsEnded: 2 } })
  assertProblem(t, await call(app, 'GET', '/me', fifth.accessToken), 401, 'session_revoked')
})

t.test('password changed and reset, email changed: each with its session (none for a link) and facts', async t => {
  const app = await build(t, { env: PROXY })
  const account = newAccount()
  const { tokens } = await register(app, account)
  const other = tokensOf(await login(app, account))
  const userId = tokens.user.id
  const changed = `a changed passphrase ${randomBytes(4).toString('hex')}`
  keep(account.password, changed)
  keepTokens(tokens)

  ok(await call(app, 'POST', '/me/password', tokens.accessToken, { currentPassword: account.password, newPassword: changed }, H), 204)
  t.match(await only(t, userId, 'password_changed'), { session_id: sid(tokens), ip: IP, user_agent: UA, detail: { otherSessionsEnded: 1, firstPassword: false } })
  t.equal((await call(app, 'GET', '/me', other.accessToken)).statusCode, 401)

  ok(await forgotPassword(app, account.email), 202)
  const resetToken = await mailedToken(app, account.email, 'Reset your password')
  const reset = `a reset passphrase ${randomBytes(4).toString('hex')}`
  keep(resetToken, reset)
  ok(await post(app, '/password/reset', { token: resetToken, newPassword: reset }, H), 204)
  t.match(await only(t, userId, 'password_reset'), { session_id: null, actor_id: null, ip: IP, user_agent: UA, detail: { sessionsEnded: 1 } })

  const signedIn = tokensOf(await login(app, { email: account.email, password: reset }))
  const newEmail = `moved.${randomBytes(4).toString('hex')}@example.com`
  ok(await call(app, 'POST', '/me/email', signedIn.accessToken, { newEmail, currentPassword: reset }, H), 202)
  t.match(await only(t, userId, 'email_change_requested'), { session_id: sid(signedIn), ip: IP, detail: { newEmail } })
  const changeToken = await mailedToken(app, newEmail, 'Confirm your new email address')
  keep(changeToken)
  ok(await post(app, '/email/change/confirm', { token: changeToken }, { ...H, authorization: `Bearer ${signedIn.accessToken}` }), 204)
  t.match(await only(t, userId, 'email_changed'), { session_id: sid(signedIn), ip: IP, user_agent: UA, detail: { previousEmail: account.email, newEmail, sessionsEnded: 0 } })
})

t.test('admin actions: the user\'s event with the admin as actor, from the admin\'s session', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock, env: PROXY })
  const { tokens: boss } = await registerAdmin(app)
  const { account, tokens } = await totpAccount(app)
  keep(account.password)
  keepTokens(boss)
  keepTokens(tokens)
  const userId = tokens.user.id
  const by = { actor_id: boss.user.id, session_id: sid(boss), ip: IP, user_agent: UA }

  clock.advance(1000)
  ok(await call(app, 'POST', `/admin/users/${userId}/revoke-sessions`, boss.accessToken, undefined, H), 204)
  t.match(await only(t, userId, 'admin_sessions_revoked'), { ...by, detail: { sessionsEnded: 1 } })
  clock.advance(1000)
  ok(await call(app, 'DELETE', `/admin/users/${userId}/mfa`, boss.accessToken, undefined, H), 204)
  t.match(await only(t, userId, 'admin_mfa_reset'), { ...by, detail: { removed: true, sessionsEnded: 0 } })
  clock.advance(1000)
  const until = new Date(clock.now() + 3600_000).toISOString()
  ok(await call(app, 'POST', `/admin/users/${userId}/suspend`, boss.accessToken, { until, reason: 'Chargeback' }, H), 204)
  t.match(await only(t, userId, 'account_suspended'), { ...by, detail: { until, reason: 'Chargeback', sessionsEnded: 0 } })
  clock.advance(1000)
  ok(await call(app, 'DELETE', `/admin/users/${userId}/suspend`, boss.accessToken, undefined, H), 204)
  t.match(await only(t, userId, 'account_unsuspended'), { ...by, detail: { wasSuspended: true } })
  t.same(await eventsOf(boss.user.id, 'account_suspended'), [], 'the admin\'s own history has none of them')
  // the log lines stay
  t.match(app.logs.join(''), new RegExp(`"audit":"account_unsuspended".*"userId":"${boss.user.id}".*"targetUserId":"${userId}"`))

  // the user reads them in their own history, without the admin's id
  clock.advance(1000)
  const back = tokensOf(await login(app, account))
  const mine = (ok(await call(app, 'GET', '/me/security-events', back.accessToken)).json() as { events: Record<string, unknown>[] }).events
  t.same(mine.slice(0, 5).map(e => e.type), ['login_success', 'account_unsuspended', 'account_suspended', 'admin_mfa_reset', 'admin_sessions_revoked'], 'newest first')
  t.match(mine[2], { type: 'account_suspended', detail: { until, reason: 'Chargeback' } })
  for (const e of mine) t.same(Object.keys(e).sort(), EVENT_KEYS, 'no actor in the user\'s view')
})

t.test('rate-limit locks: per account (with its user), per IP (once a minute, no user)', async t => {
  const app = await build(t, { env: { ...PROXY, RATE_LIMIT_LOGIN_ACCOUNT: '2', RATE_LIMIT_LOGIN_IP: '3' } })
  const { body: account, tokens } = await register(app)
  keep(account.password)
  keepTokens(tokens)
  const from = (ip: string, agent = UA) => ({ 'user-agent': agent, 'x-forwarded-for': ip })
  assertProblem(t, await login(app, { email: account.email, password: 'wrong password one' }, from('198.51.100.1')), 401, 'invalid_credentials')
  assertProblem(t, await login(app, { email: account.email, password: 'wrong password two' }, from('198.51.100.2')), 401, 'invalid_credentials')
  assertProblem(t, await login(app, { email: account.email, password: account.password }, from('198.51.100.3')), 429, 'too_many_requests')
  t.match(await only(t, tokens.user.id, 'rate_limited'), { user_id: tokens.user.id, session_id: null, ip: '198.51.100.3', user_agent: UA, detail: { method: 'password', code: 'too_many_requests' } })

  const agent = `Flood/${randomBytes(4).toString('hex')}`
  const flood = from('198.51.100.99', agent)
  for (let i = 0; i < 3; i++) assertProblem(t, await login(app, { email: `nobody${i}@example.com`, password: 'whatever password' }, flood), 401, 'invalid_credentials')
  for (let i = 0; i < 3; i++) assertProblem(t, await login(app, { email: `nobody${i}@example.com`, password: 'whatever password' }, flood), 429, 'too_many_requests')
  // the per-IP lock is written off the request path
  let locks: EventRow[] = []
  for (let i = 0; i < 100 && !locks.length; i++) {
    await new Promise(resolve => setTimeout(resolve, 20))
    locks = (await byAgent(flood)).filter(e => e.type === 'rate_limited')
  }
  t.match(locks, [{ user_id: null, session_id: null, ip: '198.51.100.99', detail: { scope: 'ip', route: '/login' } }], 'one row for three refusals')
  t.equal((await byAgent(flood)).filter(e => e.type === 'login_failure').length, 3, 'the refused requests were not checked')
})

t.test('written in the transaction of the change: a change that fails leaves no row, a row that fails leaves no change', async t => {
  const app = await build(t)
  const { tokens: boss } = await registerAdmin(app)
  const account = newAccount()
  const { tokens } = await register(app, account)
  const other = tokensOf(await login(app, account))
  keep(account.password)
  keepTokens(tokens)
  const userId = tokens.user.id

  // the notice after the row fails: the password stays, and so does the row's absence
  const failingNotice = stub(t, app.events, 'notify', async () => { throw new Error('outbox unavailable') })
  const newPassword = `a passphrase never set ${randomBytes(4).toString('hex')}`
  keep(newPassword)
  assertProblem(t, await call(app, 'POST', '/me/password', tokens.accessToken, { currentPassword: account.password, newPassword }), 500, 'internal_error')
  failingNotice.restore()
  t.same(await eventsOf(userId, 'password_changed'), [])
  t.equal((await call(app, 'GET', '/me', other.accessToken)).statusCode, 200, 'no session ended')
  t.equal((await login(app, account)).statusCode, 200, 'the old password still signs in')
  assertProblem(t, await login(app, { email: account.email, password: newPassword }), 401, 'invalid_credentials')

  // the row itself fails: no suspension, no session ended, no notice
  const record = app.events.record.bind(app.events)
  const failingRow = stub(t, app.events, 'record', async (ex, type, ...rest) => {
    if (type === 'account_suspended') throw new Error('history unavailable')
    return record(ex, type, ...rest)
  })
  assertProblem(t, await call(app, 'POST', `/admin/users/${userId}/suspend`, boss.accessToken, { reason: 'never happened' }), 500, 'internal_error')
  failingRow.restore()
  t.equal((await call(app, 'GET', '/me', tokens.accessToken)).statusCode, 200, 'the sessions are live')
  t.equal((await login(app, account)).statusCode, 200, 'the account is not suspended')
  t.same(await rows(sql`select id from outbox where recipient = ${account.email} and kind = 'notice'`), [], 'no notice')
  t.same(await eventsOf(userId, 'account_suspended'), [])
})

t.test('GET /me/security-events: the caller\'s own, newest first, a page at a time', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock, env: PROXY })
  const { body: account, tokens } = await register(app)
  const { body: stranger, tokens: theirs } = await register(app)
  keep(account.password, stranger.password)
  keepTokens(tokens)
  keepTokens(theirs)
  // 24 events of ours, one second apart, with the stranger's in between
  for (let i = 0; i < 23; i++) {
    clock.advance(1000)
    await login(app, { email: account.email, password: i % 2 ? account.password : WRONG }, H)
    await login(app, { email: stranger.email, password: WRONG })
  }
  const session = tokensOf(await refresh(app, tokens.refreshToken))
  const stored = await eventsOf(tokens.user.id)
  t.equal(stored.length, 24)

  const res = await call(app, 'GET', '/me/security-events', session.accessToken)
  t.equal(res.statusCode, 200)
  t.equal(res.headers['cache-control'], 'no-store')
  const body = res.json() as { events: { id: string, at: string, type: string, ip: string | null, userAgent: string | null, sessionId: string | null, detail: Record<string, unknown> }[], nextCursor: string | null }
  t.equal(body.events.length, 20, 'twenty by default')
  t.equal(body.nextCursor, body.events[19]!.id)
  for (const e of body.events) t.same(Object.keys(e).sort(), EVENT_KEYS)
  const newest = [...stored].reverse()
  t.same(body.events.map(e => e.id), newest.slice(0, 20).map(e => e.id), 'newest first, only the caller\'s')
  t.same(body.events[0], {
    id: newest[0]!.id, type: newest[0]!.type, at: new Date(newest[0]!.at_ms).toISOString(), ip: newest[0]!.ip, userAgent: newest[0]!.user_agent, sessionId: newest[0]!.session_id, detail: newest[0]!.detail,
  })
  const times = body.events.map(e => Date.parse(e.at))
  t.same(times, [...times].sort((a, b) => b - a))

  for (const limit of [1, 5, 7, 12, 24]) {
    const pages = await allPages(app, session.accessToken, '/me/security-events', limit)
    t.same(pages.flatMap(p => p.events.map(e => e.id)), newest.map(e => e.id), `limit ${limit}: every event once, in order`)
    t.equal(pages.at(-1)!.nextCursor, null, `limit ${limit}: nextCursor null on the last page`)
    t.equal(pages.length, Math.ceil(24 / limit), `limit ${limit}: no empty last page`)
  }
  const upper = await call(app, 'GET', `/me/security-events?limit=3&cursor=${body.events[2]!.id.toUpperCase()}`, session.accessToken)
  t.same((upper.json() as typeof body).events.map(e => e.id), newest.slice(3, 6).map(e => e.id), 'a cursor in capitals')

  const theirsNow = tokensOf(await refresh(app, theirs.refreshToken))
  const strangers = (ok(await call(app, 'GET', '/me/security-events?limit=100', theirsNow.accessToken)).json() as typeof body).events
  t.ok(strangers.length >= 24)
  t.notOk(strangers.some(e => stored.some(s => s.id === e.id)), 'nobody sees another\'s events')

  for (const query of ['limit=0', 'limit=101', 'limit=abc', 'cursor=nope', 'cursor=', 'other=1']) {
    assertProblem(t, await call(app, 'GET', `/me/security-events?${query}`, session.accessToken), 400, 'validation_failed')
  }
  assertProblem(t, await app.inject({ url: '/me/security-events' }), 401, 'invalid_token')
})

t.test('GET /admin/audit-events: everyone\'s, by user and by type, with the actor; admins only', async t => {
  const app = await build(t)
  const { tokens: boss } = await registerAdmin(app)
  const { body: account, tokens } = await register(app)
  keep(account.password)
  keepTokens(boss)
  keepTokens(tokens)
  const userId = tokens.user.id
  for (let i = 0; i < 3; i++) await login(app, { email: account.email, password: WRONG })
  const headers = probe()
  await login(app, { email: 'nobody-at-all@example.com', password: 'whatever password' }, headers)
  ok(await call(app, 'POST', `/admin/users/${userId}/revoke-sessions`, boss.accessToken), 204)

  type AdminPage = { events: { id: string, type: string, userId: string | null, actorId: string | null }[], nextCursor: string | null }
  const list = async (query: string) => ok(await call(app, 'GET', `/admin/audit-events?${query}`, boss.accessToken)).json() as AdminPage
  const theirs = await list(`userId=${userId}&limit=100`)
  t.same(theirs.events.map(e => e.id), (await eventsOf(userId)).map(e => e.id).reverse(), 'the user\'s, newest first')
  t.ok(theirs.events.every(e => e.userId === userId))
  t.same(Object.keys(theirs.events[0]!).sort(), [...EVENT_KEYS, 'actorId', 'userId'].sort())
  t.match(theirs.events[0], { type: 'admin_sessions_revoked', userId, actorId: boss.user.id })

  const failures = await list(`userId=${userId.toUpperCase()}&type=login_failure`)
  t.same(failures.events.map(e => e.type), ['login_failure', 'login_failure', 'login_failure'])
  t.ok(failures.events.every(e => e.userId === userId && e.actorId === null))
  const paged = await allPages(app, boss.accessToken, `/admin/audit-events?userId=${userId}&type=login_failure`, 2)
  t.same(paged.flatMap(p => p.events.map(e => e.id)), failures.events.map(e => e.id), 'pages with the filters kept')
  t.equal(paged.length, 2)

  const everyone = await list('type=login_failure&limit=100')
  const unknown = (await byAgent(headers))[0]!
  t.match(everyone.events.find(e => e.id === unknown.id), { userId: null, actorId: null, type: 'login_failure' }, 'a sign-in to no account, with no user')
  t.ok(everyone.events.every(e => e.type === 'login_failure'))
  t.same((await list('type=no_such_type')).events, [])
  t.ok((await list('limit=100')).events.some(e => e.userId === boss.user.id), 'no filter: everyone\'s')

  for (const query of ['userId=nope', 'type=', 'limit=0', 'limit=101', 'cursor=nope', 'other=1', `type=${'x'.repeat(65)}`]) {
    assertProblem(t, await call(app, 'GET', `/admin/audit-events?${query}`, boss.accessToken), 400, 'validation_failed')
  }
  assertProblem(t, await call(app, 'GET', '/admin/audit-events', tokens.accessToken), 401, 'session_revoked')
  const user = tokensOf(await login(app, account))
  assertProblem(t, await call(app, 'GET', `/admin/audit-events?userId=${userId}`, user.accessToken), 403, 'forbidden')
  assertProblem(t, await app.inject({ url: '/admin/audit-events' }), 401, 'invalid_token')
})

// last: it reads the rows every test above wrote
t.test('no secret in any row: no password, token, code or key', async t => {
  const all = await rows<Record<string, unknown>>(sql`select * from audit_events`)
  t.ok(all.length > 50, `${all.length} rows`)
  t.ok(secrets.size > 30, `${secrets.size} secrets looked for`)
  const text = all.map(r => JSON.stringify(r)).join('\n')
  for (const secret of secrets) t.notOk(text.includes(secret), `not in the history: ${secret.slice(0, 6)}…`)
  const uuid = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi
  const details = all.map(r => JSON.stringify(r.detail).replace(uuid, '')).join('\n')
  for (const code of codes) t.notOk(details.includes(code), `no code ${code}`)
  t.notOk(/\$argon2|[A-Za-z0-9_-]{40,}/.test(details), 'nothing like a hash or a token in a detail')
})
