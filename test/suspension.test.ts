import type { PublicKeyCredentialCreationOptionsJSON, PublicKeyCredentialRequestOptionsJSON } from '@simplewebauthn/server'
import { sql } from 'drizzle-orm'
import t from 'tap'
import {
  assertProblem, build, call, claims, fakeClock, listSessions, login, loginMfa, me, mfaTokenOf, newAccount, refresh, register, registerAdmin, rows, signIn,
  stub, totp, totpAccount, wrongCode, type Test, type TestApp, type TokenBody,
} from './helper.js'
import { callbackFor, exchange, flow, oidcEnv, person, signInWith } from './oidc-flow.js'
import { startTestProvider } from './oidc-provider.js'
import { softAuthenticator, tamperSignature, type SoftAuthenticator } from './webauthn-authenticator.js'

// Suspension by an admin: every session ends at once, and every way of signing in answers 403
// account_suspended once its credentials are right (wrong ones get the answer they always get).

const op = await startTestProvider({ redirectUris: [callbackFor('test')] })
t.teardown(() => op.stop())

/** The passkey origin of the test settings (no APP_URL: http://localhost:PORT). */
const ORIGIN = 'http://localhost:3000'
const STEP = 30_000
const HOUR = 3600_000

const suspend = (app: TestApp, token: string, id: string, payload: Record<string, unknown> = {}) => call(app, 'POST', `/admin/users/${id}/suspend`, token, payload)
const unsuspend = (app: TestApp, token: string, id: string) => call(app, 'DELETE', `/admin/users/${id}/suspend`, token)
const liveSessions = async (userId: string) => (await rows<{ n: number }>(sql`select count(*)::int as n from sessions where user_id = ${userId} and revoked_at is null`))[0]!.n
const eventsOf = (userId: string, type: string) => rows<{ user_id: string | null, actor_id: string | null, session_id: string | null, detail: Record<string, unknown> }>(
  sql`select user_id, actor_id, session_id, detail from audit_events where user_id = ${userId} and type = ${type} order by id`)

/** The row of one user in GET /admin/users. */
async function listed (app: TestApp, adminToken: string, email: string) {
  const res = await call(app, 'GET', `/admin/users?email=${encodeURIComponent(email)}`, adminToken)
  if (res.statusCode !== 200) throw new Error(`list: ${res.statusCode} ${res.body}`)
  return (res.json() as { users: { email: string, suspended: boolean, suspendedUntil: string | null }[] }).users.find(u => u.email === email)!
}

function assertSuspended (t: Test, res: { statusCode: number, headers: Record<string, unknown>, body: string }) {
  const body = assertProblem(t, res, 403, 'account_suspended')
  t.notOk('accessToken' in body || 'refreshToken' in body || 'mfaToken' in body, 'no tokens')
  t.notOk(res.headers['set-cookie'], 'no cookie')
  return body
}

/** A new account with a passkey (registered with user verification) and the authenticator holding it. */
async function passkeyUser (app: TestApp) {
  const { body: account, tokens } = await register(app)
  const authenticator = softAuthenticator()
  const options = (await call(app, 'POST', '/passkeys/register/options', tokens.accessToken)).json() as PublicKeyCredentialCreationOptionsJSON
  const added = await call(app, 'POST', '/passkeys/register', tokens.accessToken, { response: authenticator.register(options, { origin: ORIGIN }) })
  if (added.statusCode !== 201) throw new Error(`register passkey: ${added.statusCode} ${added.body}`)
  return { account, tokens, authenticator }
}
async function passkeyLogin (app: TestApp, authenticator: SoftAuthenticator, options: { userVerified?: boolean, tampered?: boolean } = {}) {
  const requestOptions = (await app.inject({ method: 'POST', url: '/login/passkey/options' })).json() as PublicKeyCredentialRequestOptionsJSON
  const response = authenticator.authenticate(requestOptions, { origin: ORIGIN, userVerified: options.userVerified ?? true })
  return app.inject({ method: 'POST', url: '/login/passkey', payload: { response: options.tampered ? tamperSignature(response) : response } })
}
const codesOf = (events: { detail: Record<string, unknown> }[]) => events.map(e => `${String(e.detail.method)} ${String(e.detail.code)}`).sort()

t.test('password: every session ends at once; the right password is 403 account_suspended, a wrong one the usual 401', async t => {
  const app = await build(t)
  const { tokens: boss } = await registerAdmin(app)
  const { body: account, tokens: first } = await register(app, newAccount({ username: `u${Date.now().toString(36)}` }))
  const second = await signIn(app, account)
  const bystander = (await register(app)).tokens

  // a wrong password of an account that is not suspended, for comparison
  const usual = assertProblem(t, await login(app, { email: bystander.user.email, password: 'not the password at all' }), 401, 'invalid_credentials')

  const res = await suspend(app, boss.accessToken, first.user.id, { reason: 'Reported for abuse' })
  t.equal(res.statusCode, 204, res.body)
  t.equal(res.body, '')
  t.equal(res.headers['cache-control'], 'no-store')

  for (const s of [first, second]) {
    assertProblem(t, await me(app, s.accessToken), 401, 'session_revoked')
    assertProblem(t, await listSessions(app, s.accessToken), 401, 'session_revoked')
    assertProblem(t, await refresh(app, s.refreshToken), 401, 'session_revoked')
  }
  t.equal(await liveSessions(first.user.id), 0)
  t.same((await rows(sql`select distinct revoked_reason from sessions where user_id = ${first.user.id}`)), [{ revoked_reason: 'suspended' }])
  t.equal((await me(app, boss.accessToken)).statusCode, 200, 'the admin stays signed in')
  t.equal((await me(app, bystander.accessToken)).statusCode, 200, 'nobody else is signed out')

  const refused = assertSuspended(t, await login(app, { email: account.email, password: account.password }))
  t.notOk(JSON.stringify(refused).includes('abuse'), 'the reason is not told to whoever has the password')
  assertSuspended(t, await login(app, { username: account.username, password: account.password }))
  assertSuspended(t, await login(app, { email: account.email, password: account.password, rememberMe: true }, { 'x-auth-mode': 'cookie' }))
  t.equal(await liveSessions(first.user.id), 0, 'no session was opened')

  const wrong = assertProblem(t, await login(app, { email: account.email, password: 'not the password at all' }), 401, 'invalid_credentials')
  t.same(wrong, usual, 'a wrong password learns nothing of the suspension')
  t.same(codesOf(await eventsOf(first.user.id, 'login_failure')), [
    'password account_suspended', 'password account_suspended', 'password account_suspended', 'password invalid_credentials',
  ])
  t.match(await eventsOf(first.user.id, 'account_suspended'), [{ actor_id: boss.user.id, session_id: claims(boss.accessToken).sid, detail: { reason: 'Reported for abuse', until: null, sessionsEnded: 2 } }])
  t.match(app.logs.join(''), new RegExp(`"audit":"account_suspended".*"userId":"${boss.user.id}".*"targetUserId":"${first.user.id}".*"sessionsEnded":2`))

  // the owner is told once, without a token
  const notices = await rows<{ data: Record<string, unknown> }>(sql`select data from outbox where recipient = ${account.email} and kind = 'notice'`)
  t.same(notices.map(n => n.data), [{ notice: 'account_suspended', reason: 'Reported for abuse' }])
})

t.test('the second step of an account with TOTP', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock })
  const { tokens: boss } = await registerAdmin(app)

  t.test('a suspended account with TOTP: the right password is 403 account_suspended, not mfa_required, and no mfaToken is made', async t => {
    const { account, tokens } = await totpAccount(app)
    t.equal((await suspend(app, boss.accessToken, tokens.user.id)).statusCode, 204)
    assertSuspended(t, await login(app, { email: account.email, password: account.password }))
    t.same(await rows(sql`select id from mfa_challenges where user_id = ${tokens.user.id}`), [])
    assertProblem(t, await login(app, { email: account.email, password: 'not the password at all' }), 401, 'invalid_credentials')
  })

  t.test('an mfaToken made before the suspension opens nothing after it', async t => {
    const { account, tokens, secret } = await totpAccount(app)
    const mfaToken = await mfaTokenOf(app, account)
    t.equal((await suspend(app, boss.accessToken, tokens.user.id)).statusCode, 204)
    clock.advance(STEP)
    // the suspension ended the sign-ins waiting for their second factor, as a sign-out everywhere does
    assertProblem(t, await loginMfa(app, { mfaToken, code: totp(secret, clock.now()) }), 400, 'mfa_token_invalid')
    t.equal(await liveSessions(tokens.user.id), 0)
  })

  t.test('a suspension that lands between the two steps: 403 account_suspended after the code is checked, and the code is not spent', async t => {
    const { account, tokens, secret, recoveryCodes } = await totpAccount(app)
    const sessionCount = async () => (await rows<{ n: number }>(sql`select count(*)::int as n from sessions where user_id = ${tokens.user.id}`))[0]!.n
    const before = await sessionCount()
    const wrongFirst = await mfaTokenOf(app, account)
    const withCode = await mfaTokenOf(app, account)
    const withRecovery = await mfaTokenOf(app, account)
    // set as a suspension committed after the first step would leave it, its pending sign-ins not yet voided
    await rows(sql`update users set suspended_at = ${new Date(clock.now()).toISOString()}::timestamptz where id = ${tokens.user.id}`)
    clock.advance(STEP)
    assertProblem(t, await loginMfa(app, { mfaToken: wrongFirst, code: wrongCode(secret, clock.now()) }), 403, 'mfa_code_invalid')
    assertSuspended(t, await loginMfa(app, { mfaToken: withCode, code: totp(secret, clock.now()) }))
    assertSuspended(t, await loginMfa(app, { mfaToken: withRecovery, recoveryCode: recoveryCodes[0] }))
    t.equal(await sessionCount(), before, 'no session was opened')
    t.same(codesOf(await eventsOf(tokens.user.id, 'login_failure')), ['recovery_code account_suspended', 'totp account_suspended', 'totp mfa_code_invalid'])
    t.same(await eventsOf(tokens.user.id, 'recovery_code_used'), [], 'no recovery code was used')

    t.equal((await unsuspend(app, boss.accessToken, tokens.user.id)).statusCode, 204)
    const back = await loginMfa(app, { mfaToken: await mfaTokenOf(app, account), recoveryCode: recoveryCodes[0] })
    t.equal(back.statusCode, 200, 'the recovery code refused for the suspension still works')
    t.equal(await sessionCount(), before + 1)
  })
})

t.test('a passkey: 403 account_suspended with or without user verification; a refused assertion stays 401', async t => {
  const app = await build(t)
  const { tokens: boss } = await registerAdmin(app)
  const { tokens, authenticator } = await passkeyUser(app)
  t.equal((await passkeyLogin(app, authenticator)).statusCode, 200, 'signs in before')
  t.equal((await suspend(app, boss.accessToken, tokens.user.id)).statusCode, 204)
  t.equal(await liveSessions(tokens.user.id), 0)

  assertSuspended(t, await passkeyLogin(app, authenticator))
  assertSuspended(t, await passkeyLogin(app, authenticator, { userVerified: false }))
  assertProblem(t, await passkeyLogin(app, authenticator, { tampered: true }), 401, 'invalid_credentials')
  t.equal(await liveSessions(tokens.user.id), 0)
  t.same(codesOf(await eventsOf(tokens.user.id, 'login_failure')), ['passkey account_suspended', 'passkey account_suspended'])

  t.equal((await unsuspend(app, boss.accessToken, tokens.user.id)).statusCode, 204)
  t.equal((await passkeyLogin(app, authenticator)).statusCode, 200, 'signs in once lifted')
})

t.test('an identity provider: the exchange of the callback\'s code is 403 account_suspended', async t => {
  const app = await build(t, { env: oidcEnv({ test: op }) })
  const { tokens: boss } = await registerAdmin(app)
  const someone = person(op)
  const { tokens } = await signInWith(app, op, someone.sub)
  t.equal((await suspend(app, boss.accessToken, tokens.user.id)).statusCode, 204)
  assertProblem(t, await me(app, tokens.accessToken), 401, 'session_revoked')

  const f = await flow(app, op, someone.sub)
  const res = await exchange(app, { code: f.location.searchParams.get('code'), codeVerifier: f.verifier })
  assertSuspended(t, res)
  t.equal(await liveSessions(tokens.user.id), 0)
  t.same(codesOf(await eventsOf(tokens.user.id, 'login_failure')), ['provider account_suspended'])
  // a wrong verifier is refused as always, before the suspension is looked at
  const other = await flow(app, op, someone.sub)
  assertProblem(t, await exchange(app, { code: other.location.searchParams.get('code'), codeVerifier: 'x'.repeat(43) }), 400, 'oauth_code_invalid')

  t.equal((await unsuspend(app, boss.accessToken, tokens.user.id)).statusCode, 204)
  t.equal((await signInWith(app, op, someone.sub)).tokens.user.id, tokens.user.id, 'signs in once lifted')
})

t.test('until: in the future, it ends by itself on the clock; in the past or now, 400', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock })
  const { tokens: boss } = await registerAdmin(app)
  const { body: account, tokens } = await register(app)

  // the last one is 10000-01-01T00:00Z in UTC, which the database cannot hold (it answered 500)
  for (const until of [new Date(clock.now() - 1000).toISOString(), new Date(clock.now()).toISOString(), '9999-12-31T00:01:00-23:59']) {
    const body = assertProblem(t, await suspend(app, boss.accessToken, tokens.user.id, { until }), 400, 'validation_failed')
    t.match(body.errors, [{ path: '/until' }])
  }
  for (const payload of [{ until: 'tomorrow' }, { until: 1 }, { reason: 'x'.repeat(501) }, { reason: 'a\u0000b' }, { reason: 'a\ud800b' }, { other: 1 }]) {
    assertProblem(t, await suspend(app, boss.accessToken, tokens.user.id, payload), 400, 'validation_failed')
  }
  t.equal((await me(app, tokens.accessToken)).statusCode, 200, 'a refused suspension ends nothing')
  t.match(await listed(app, boss.accessToken, account.email), { suspended: false, suspendedUntil: null })

  const until = new Date(clock.now() + HOUR).toISOString()
  t.equal((await suspend(app, boss.accessToken, tokens.user.id, { until })).statusCode, 204)
  t.match(await listed(app, boss.accessToken, account.email), { suspended: true, suspendedUntil: until })
  assertProblem(t, await me(app, tokens.accessToken), 401, 'session_revoked')
  clock.advance(HOUR - 1000)
  // the admin's access token has run out meanwhile
  const admin = (await refresh(app, boss.refreshToken)).json() as TokenBody
  assertSuspended(t, await login(app, { email: account.email, password: account.password }))
  t.match(await eventsOf(tokens.user.id, 'account_suspended'), [{ detail: { until, reason: null } }])

  clock.advance(1000)
  t.match(await listed(app, admin.accessToken, account.email), { suspended: false, suspendedUntil: null }, 'over at until')
  const again = await signIn(app, account)
  t.equal((await me(app, again.accessToken)).statusCode, 200, 'signs in once until has passed')
  // the sessions it ended stay ended
  assertProblem(t, await refresh(app, tokens.refreshToken), 401, 'session_revoked')
})

t.test('DELETE lifts it: sign-in works again, the ended sessions stay ended; lifting none is 204 too', async t => {
  const app = await build(t)
  const { tokens: boss } = await registerAdmin(app)
  const { body: account, tokens } = await register(app)
  t.equal((await unsuspend(app, boss.accessToken, tokens.user.id)).statusCode, 204, 'nothing to lift')
  t.equal((await me(app, tokens.accessToken)).statusCode, 200, 'and nothing ended')

  t.equal((await suspend(app, boss.accessToken, tokens.user.id)).statusCode, 204)
  t.match(await listed(app, boss.accessToken, account.email), { suspended: true, suspendedUntil: null }, 'indefinite: suspendedUntil null')
  const lifted = await unsuspend(app, boss.accessToken, tokens.user.id)
  t.equal(lifted.statusCode, 204)
  t.equal(lifted.body, '')
  t.match(await listed(app, boss.accessToken, account.email), { suspended: false, suspendedUntil: null })
  const again = await signIn(app, account)
  t.equal((await refresh(app, again.refreshToken)).statusCode, 200)
  assertProblem(t, await refresh(app, tokens.refreshToken), 401, 'session_revoked')
  assertProblem(t, await me(app, tokens.accessToken), 401, 'session_revoked')
  t.same((await rows<{ suspended_at: unknown, suspended_until: unknown, suspended_reason: unknown }>(sql`select suspended_at, suspended_until, suspended_reason from users where id = ${tokens.user.id}`)),
    [{ suspended_at: null, suspended_until: null, suspended_reason: null }])
  t.match((await eventsOf(tokens.user.id, 'account_unsuspended')).map(e => ({ actor: e.actor_id, ...e.detail })), [{ actor: boss.user.id, wasSuspended: false }, { actor: boss.user.id, wasSuspended: true }])

  // suspended again (a new until replaces the old), then lifted before it
  t.equal((await suspend(app, boss.accessToken, tokens.user.id, { until: new Date(Date.now() + HOUR).toISOString() })).statusCode, 204)
  const later = new Date(Date.now() + 2 * HOUR).toISOString()
  t.equal((await suspend(app, boss.accessToken, tokens.user.id, { until: later })).statusCode, 204)
  t.match(await listed(app, boss.accessToken, account.email), { suspended: true, suspendedUntil: later })
  t.equal((await unsuspend(app, boss.accessToken, tokens.user.id)).statusCode, 204)
  t.equal((await login(app, { email: account.email, password: account.password })).statusCode, 200)
})

t.test('refusals: 409 cannot_suspend_self, 403 forbidden for users, 404 not_found for unknown ids, 401 without a token', async t => {
  const app = await build(t)
  const { tokens: boss } = await registerAdmin(app)
  const { tokens: other } = await registerAdmin(app)
  const { tokens: user } = await register(app)

  assertProblem(t, await suspend(app, boss.accessToken, boss.user.id), 409, 'cannot_suspend_self')
  assertProblem(t, await suspend(app, boss.accessToken, boss.user.id.toUpperCase(), { until: new Date(Date.now() + HOUR).toISOString() }), 409, 'cannot_suspend_self')
  t.equal((await me(app, boss.accessToken)).statusCode, 200, 'still signed in')
  t.same(await eventsOf(boss.user.id, 'account_suspended'), [])

  for (const res of [await suspend(app, user.accessToken, other.user.id), await unsuspend(app, user.accessToken, other.user.id), await suspend(app, user.accessToken, user.user.id)]) {
    assertProblem(t, res, 403, 'forbidden')
  }
  t.equal((await me(app, other.accessToken)).statusCode, 200, 'a user cannot suspend anyone')
  t.equal((await me(app, user.accessToken)).statusCode, 200)

  for (const id of ['00000000-0000-7000-8000-000000000000', 'not-an-id', 'x'.repeat(300)]) {
    assertProblem(t, await suspend(app, boss.accessToken, id), 404, 'not_found')
    assertProblem(t, await unsuspend(app, boss.accessToken, id), 404, 'not_found')
  }
  for (const method of ['POST', 'DELETE'] as const) {
    const res = await app.inject({ method, url: `/admin/users/${user.user.id}/suspend`, ...(method === 'POST' ? { payload: {} } : {}) })
    assertProblem(t, res, 401, 'invalid_token')
  }

  // one admin may suspend another; the suspended one's admin token dies with its session
  t.equal((await suspend(app, boss.accessToken, other.user.id)).statusCode, 204)
  assertProblem(t, await suspend(app, other.accessToken, boss.user.id), 401, 'session_revoked')
  t.equal((await me(app, boss.accessToken)).statusCode, 200)
})

t.test('a suspension and sign-ins or a refresh at the same moment never leave a live session', async t => {
  const app = await build(t)
  const { tokens: boss } = await registerAdmin(app)
  const { body: account, tokens } = await register(app)
  const outcomes = new Set<number>()
  for (let round = 0; round < 8; round++) {
    const before = round === 0 ? tokens : await signIn(app, account)
    const [a, suspended, b, refreshed] = await Promise.all([
      login(app, { email: account.email, password: account.password }),
      suspend(app, boss.accessToken, tokens.user.id),
      login(app, { email: account.email, password: account.password }),
      refresh(app, before.refreshToken),
    ])
    t.equal(suspended.statusCode, 204, suspended.body)
    for (const res of [a, b]) {
      outcomes.add(res.statusCode)
      if (res.statusCode === 200) assertProblem(t, await me(app, (res.json() as TokenBody).accessToken), 401, 'session_revoked')
      else assertSuspended(t, res)
    }
    // a refresh at the same moment: its new tokens die with the session, or it finds the session ended
    if (refreshed.statusCode === 200) assertProblem(t, await me(app, (refreshed.json() as TokenBody).accessToken), 401, 'session_revoked')
    else assertProblem(t, refreshed, 401, 'session_revoked')
    t.equal(await liveSessions(tokens.user.id), 0, `round ${round}: no live session`)
    t.equal((await unsuspend(app, boss.accessToken, tokens.user.id)).statusCode, 204)
  }
  t.ok([...outcomes].every(s => s === 200 || s === 403), `only 200 or 403: ${[...outcomes].join(', ')}`)
})

t.test('a suspension and a second step at the same moment: no 5xx, no live session', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock })
  const { tokens: boss } = await registerAdmin(app)
  const { account, tokens, secret } = await totpAccount(app)
  for (let round = 0; round < 6; round++) {
    const mfaToken = await mfaTokenOf(app, account)
    clock.advance(STEP)
    const [finished, suspended] = await Promise.all([
      loginMfa(app, { mfaToken, code: totp(secret, clock.now()) }),
      suspend(app, boss.accessToken, tokens.user.id),
    ])
    t.equal(suspended.statusCode, 204, suspended.body)
    t.ok([200, 400, 403].includes(finished.statusCode), `round ${round}: ${finished.statusCode} ${finished.body.slice(0, 120)}`)
    t.equal(await liveSessions(tokens.user.id), 0, `round ${round}: no live session`)
    t.equal((await unsuspend(app, boss.accessToken, tokens.user.id)).statusCode, 204)
  }

  // the worst order: the second step has spent its token when the suspension takes the account
  const mfaToken = await mfaTokenOf(app, account)
  clock.advance(STEP)
  let suspension: Promise<{ statusCode: number, body: string }> | undefined
  const spend = app.mfa.spendChallenge.bind(app.mfa)
  stub(t, app.mfa, 'spendChallenge', async (ex, id) => {
    const spent = await spend(ex, id)
    suspension = suspend(app, boss.accessToken, tokens.user.id)
    await new Promise(resolve => setTimeout(resolve, 300))
    return spent
  })
  const finished = await loginMfa(app, { mfaToken, code: totp(secret, clock.now()) })
  const suspended = await suspension!
  t.ok([200, 403].includes(finished.statusCode), `the second step: ${finished.statusCode} ${finished.body.slice(0, 200)}`)
  t.equal(suspended.statusCode, 204, `the suspension: ${suspended.body.slice(0, 200)}`)
  t.equal(await liveSessions(tokens.user.id), 0)
})

t.test('a suspension while the user turns on TOTP (this session raised, the others ended): no 5xx', async t => {
  const app = await build(t)
  const { tokens: boss } = await registerAdmin(app)
  const account = newAccount()
  const { tokens } = await register(app, account)
  // the confirming session is the newer one, so a suspension meets the other first
  const confirming = await signIn(app, account)
  const { secret } = (await call(app, 'POST', '/mfa/totp/enroll', confirming.accessToken)).json() as { secret: string }
  const endAll = app.sessions.endAll.bind(app.sessions)
  let suspension: Promise<{ statusCode: number, body: string }> | undefined
  stub(t, app.sessions, 'endAll', async (userId, reason, options) => {
    if (reason === 'mfa_enabled') {
      suspension = suspend(app, boss.accessToken, userId)
      await new Promise(resolve => setTimeout(resolve, 300))
    }
    return endAll(userId, reason, options)
  })
  const confirmed = await call(app, 'POST', '/mfa/totp/confirm', confirming.accessToken, { code: totp(secret, Date.now()) })
  const suspended = await suspension!
  t.equal(confirmed.statusCode, 200, `the confirmation: ${confirmed.body.slice(0, 200)}`)
  t.equal(suspended.statusCode, 204, `the suspension: ${suspended.body.slice(0, 200)}`)
  t.equal(await liveSessions(tokens.user.id), 0)
})

t.test('until on a leap second (RFC 3339 :60) is read as the second before it', async t => {
  const app = await build(t)
  const { tokens: boss } = await registerAdmin(app)
  const { tokens } = await register(app)
  const res = await suspend(app, boss.accessToken, tokens.user.id, { until: '2030-06-30T23:59:60Z' })
  t.equal(res.statusCode, 204, res.body)
  const [row] = await rows<{ until: string }>(sql`select to_char(suspended_until at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') as until from users where id = ${tokens.user.id}`)
  t.equal(row!.until, '2030-06-30T23:59:59')
})
