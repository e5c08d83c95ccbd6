import { sql } from 'drizzle-orm'
import { generateKeyPair } from 'jose'
import t from 'tap'
import {
  assertProblem, build, call, claims, enableTotp, fakeClock, listSessions, loginMfa, me, newAccount, register, rows, totp, verifyEmail,
  type TestApp, type TokenBody,
} from './helper.js'
import {
  auditLines, authorize, callback, callbackFor, exchange, flow, mailedToken, MOBILE, oidcEnv, person, pkce, signInWith, WEB,
} from './oidc-flow.js'
import { freePort, startTestProvider } from './oidc-provider.js'

// Signing in through an identity provider, against a real OpenID provider in this process. One
// provider serves the whole file; it is registered under two ids (test and other) where a test needs two.

const op = await startTestProvider({ redirectUris: [callbackFor('test'), callbackFor('other')] })
t.teardown(() => op.stop())

const COOKIE = { 'x-auth-mode': 'cookie' }
const TOKEN_KEYS = ['accessToken', 'expiresIn', 'refreshExpiresIn', 'refreshToken', 'tokenType', 'user']
const VERIFY = 'Verify your email address'

const oidcApp = (t: Parameters<typeof build>[0], extra: { env?: Record<string, string>, clock?: ReturnType<typeof fakeClock> } = {}) =>
  build(t, { env: oidcEnv({ test: op }, extra.env), ...(extra.clock ? { clock: extra.clock } : {}) })

const userByEmail = async (email: string) => (await rows<{ id: string, name: string | null, no_password: boolean, verified: boolean }>(sql`
  select id, name, password_hash is null as no_password, email_verified_at is not null as verified from users where email = ${email}`))[0]
const identitiesOf = (subject: string) => rows<{ user_id: string, provider: string, email: string | null, last_used_ms: number | null }>(sql`
  select user_id, provider, email, extract(epoch from last_used_at)::float8 * 1000 as last_used_ms from identities where subject = ${subject}`)
const count = async (query: ReturnType<typeof sql>) => (await rows<{ n: number }>(query))[0]!.n

/** The redirect headers that keep a state or a code out of caches and Referer headers. */
function assertRedirect (t: Parameters<typeof build>[0], res: { statusCode: number, headers: Record<string, unknown> }) {
  t.equal(res.statusCode, 302)
  t.equal(res.headers['cache-control'], 'no-store')
  t.equal(res.headers['referrer-policy'], 'no-referrer')
}

/** The client's redirect URI with exactly these query parameters. */
function assertAnswer (t: Parameters<typeof build>[0], location: URL, base: string, params: Record<string, string | RegExp>) {
  t.equal(`${location.protocol}${location.host ? `//${location.host}` : ''}${location.pathname}`, base, 'back to the redirect URI of the flow')
  t.same([...location.searchParams.keys()].sort(), Object.keys(params).sort(), `parameters ${Object.keys(params).join(', ')}`)
  for (const [key, value] of Object.entries(params)) {
    if (typeof value === 'string') t.equal(location.searchParams.get(key), value, key)
    else t.match(location.searchParams.get(key), value, key)
  }
}

/** A local account with a password whose email is verified (by the link of its mail). */
async function verifiedAccount (app: TestApp, email?: string) {
  const registered = await register(app, newAccount(email ? { email } : {}))
  const verified = await verifyEmail(app, await mailedToken(app, registered.body.email, VERIFY))
  if (verified.statusCode !== 204) throw new Error(`verify: ${verified.statusCode} ${verified.body}`)
  return registered
}

t.test('a new user: the provider\'s authorize URL, the callback\'s one-time code, an account without a password, a session aal1 fed', async t => {
  const app = await oidcApp(t)
  t.same((await app.inject({ url: '/oauth/providers' })).json(), { providers: [{ id: 'test', name: 'test' }] }, 'named by its id without OIDC_TEST_NAME')
  const ada = person(op, { email: 'Ada.Lovelace@IDP.Example.com', name: '  Ada Lovelace ' })
  const { verifier, challenge } = pkce()

  const start = await authorize(app, 'test', { challenge, state: 'client-state-1' })
  assertRedirect(t, start)
  const to = new URL(String(start.headers.location))
  t.equal(`${to.origin}${to.pathname}`, `${op.issuer}/auth`, 'to the provider\'s authorization endpoint')
  const q = Object.fromEntries(to.searchParams)
  t.match(q, { response_type: 'code', client_id: op.clientId, redirect_uri: callbackFor('test'), scope: 'openid email profile', code_challenge_method: 'S256' })
  t.match(q.state, /^[A-Za-z0-9_-]{43,}$/, 'our own state, at least 128 bits (here 256)')
  t.match(q.nonce, /^[A-Za-z0-9_-]{43,}$/)
  t.match(q.code_challenge, /^[A-Za-z0-9_-]{43}$/)
  t.not(q.code_challenge, challenge, 'PKCE towards the provider with our own verifier, not the client\'s challenge')
  t.not(q.state, 'client-state-1', 'the client\'s state never goes to the provider')
  const flows = await rows<{ state_hash: string, provider: string, redirect_uri: string, client_state: string, ttl_ms: number }>(sql`
    select state_hash, provider, redirect_uri, client_state, extract(epoch from expires_at - created_at)::float8 * 1000 as ttl_ms from oauth_flows where client_state = 'client-state-1'`)
  t.match(flows, [{ provider: 'test', redirect_uri: WEB, ttl_ms: 10 * 60_000 }], 'one flow row, ten minutes')
  t.not(flows[0]!.state_hash, q.state, 'the state is kept as a hash')

  op.signInAs = ada.sub
  const back = await op.follow(to.href)
  t.equal(`${back.origin}${back.pathname}`, callbackFor('test'))
  const res = await callback(app, back)
  assertRedirect(t, res)
  const location = new URL(String(res.headers.location))
  assertAnswer(t, location, WEB, { code: /^[A-Za-z0-9_-]{43,}$/, state: 'client-state-1' })
  t.equal(await count(sql`select count(*)::int as n from oauth_flows where client_state = 'client-state-1'`), 0, 'the flow is spent')

  const email = 'ada.lovelace@idp.example.com'
  const user = await userByEmail(email)
  t.match(user, { name: 'Ada Lovelace', no_password: true, verified: true }, 'the email lower-cased, verified as the provider says; no password')
  const identities = await identitiesOf(ada.sub)
  t.match(identities, [{ user_id: user!.id, provider: 'test', email }])
  t.equal(await count(sql`select count(*)::int as n from outbox where recipient = ${email}`), 0, 'no verification mail for a verified email')
  t.match(auditLines(app, 'identity_sign_up'), [{ provider: 'test', userId: user!.id }])

  const code = location.searchParams.get('code')!
  const codes = await rows<{ code_hash: string, ttl_ms: number }>(sql`
    select code_hash, extract(epoch from expires_at - created_at)::float8 * 1000 as ttl_ms from oauth_codes where user_id = ${user!.id}`)
  t.match(codes, [{ ttl_ms: 60_000 }], 'one code, sixty seconds')
  t.not(codes[0]!.code_hash, code, 'kept as a hash')

  const token = await exchange(app, { code, codeVerifier: verifier })
  t.equal(token.statusCode, 200)
  t.equal(token.headers['cache-control'], 'no-store')
  const body = token.json() as TokenBody
  t.same(Object.keys(body).sort(), TOKEN_KEYS)
  t.match(body, { tokenType: 'Bearer', refreshExpiresIn: 43_200, user: { id: user!.id, email, name: 'Ada Lovelace', username: null } })
  t.match(claims(body.accessToken), { sub: user!.id, aal: 'aal1', amr: ['fed'] })
  const sessions = (await listSessions(app, body.accessToken)).json().sessions
  t.match(sessions, [{ current: true, aal: 'aal1', rememberMe: false }])
  t.match((await me(app, body.accessToken)).json(), { id: user!.id, email, emailVerified: true, mfa: { totp: false, passkeys: 0 } })
  t.match(auditLines(app, 'login_success').at(-1), { userId: user!.id, amr: ['fed'] })
  t.equal(await count(sql`select count(*)::int as n from oauth_codes where user_id = ${user!.id}`), 0, 'the code is spent')

  // the mobile redirect URI works the same, and a client that sends no state gets none back
  const mobile = await flow(app, op, ada.sub, { redirectUri: MOBILE })
  assertAnswer(t, mobile.location, MOBILE, { code: /^[A-Za-z0-9_-]{43,}$/ })
})

t.test('a returning user: the same account, its identity marked as used', async t => {
  const clock = fakeClock()
  const app = await oidcApp(t, { clock })
  const grace = person(op)
  const first = await signInWith(app, op, grace.sub)
  const [linked] = await identitiesOf(grace.sub)
  t.equal(linked!.last_used_ms, clock.now(), 'used at sign-up')
  const users = await count(sql`select count(*)::int as n from users`)

  clock.advance(3600_000)
  const again = await signInWith(app, op, grace.sub, { state: 'again' })
  assertAnswer(t, again.location, WEB, { code: /.+/, state: 'again' })
  t.equal(again.tokens.user.id, first.tokens.user.id, 'the same user')
  t.equal(await count(sql`select count(*)::int as n from users`), users, 'no new account')
  t.match(await identitiesOf(grace.sub), [{ user_id: first.tokens.user.id, last_used_ms: clock.now() }], 'last_used_at moved to this sign-in')
  t.match(auditLines(app, 'identity_sign_in'), [{ provider: 'test', userId: first.tokens.user.id }])
})

t.test('linking by email: only when the provider and the local account both have it verified', async t => {
  const app = await oidcApp(t)
  // both verified: linked to the local account, which keeps its password
  const local = await verifiedAccount(app)
  const same = person(op, { email: local.body.email.toUpperCase() })
  const signedIn = await signInWith(app, op, same.sub)
  t.equal(signedIn.tokens.user.id, local.tokens.user.id, 'signed in to the local account')
  t.match(await identitiesOf(same.sub), [{ user_id: local.tokens.user.id, email: local.body.email }])
  t.match(auditLines(app, 'identity_linked'), [{ provider: 'test', userId: local.tokens.user.id, linkedBy: 'email' }])
  t.equal((await app.inject({ method: 'POST', url: '/login', payload: { email: local.body.email, password: local.body.password } })).statusCode, 200, 'the password still signs in')

  const refused = async (localVerified: boolean, providerVerified: boolean) => {
    const owner = localVerified ? await verifiedAccount(app) : await register(app)
    const claimant = person(op, { email: owner.body.email, email_verified: providerVerified })
    const users = await count(sql`select count(*)::int as n from users`)
    const f = await flow(app, op, claimant.sub, { state: 's' })
    assertRedirect(t, f.res)
    assertAnswer(t, f.location, WEB, { error: 'email_taken', state: 's' })
    t.same(await identitiesOf(claimant.sub), [], 'nothing linked')
    t.equal(await count(sql`select count(*)::int as n from identities where user_id = ${owner.tokens.user.id}`), 0)
    t.equal(await count(sql`select count(*)::int as n from users`), users, 'no account made')
    t.match(auditLines(app, 'identity_refused').at(-1), { provider: 'test', code: 'email_taken' })
  }
  await t.test('local verified, provider not', () => refused(true, false))
  await t.test('provider verified, local not', () => refused(false, true))
  await t.test('neither', () => refused(false, false))
})

t.test('a provider email that is not verified and not taken: a new account, unverified, with a verification mail', async t => {
  const app = await oidcApp(t)
  const unverified = person(op, { email_verified: false })
  const { tokens } = await signInWith(app, op, unverified.sub)
  t.match(await userByEmail(unverified.email!), { id: tokens.user.id, no_password: true, verified: false })
  t.match(await rows(sql`select kind, status from outbox where recipient = ${unverified.email!}`), [{ kind: 'verify_email' }], 'a verification mail is queued')
  t.equal((await me(app, tokens.accessToken)).json().emailVerified, false)
  // the mail's link verifies it, as for any account
  t.equal((await verifyEmail(app, await mailedToken(app, unverified.email!, VERIFY))).statusCode, 204)
  t.equal((await me(app, tokens.accessToken)).json().emailVerified, true)
})

t.test('no email from the provider: error=provider_email_missing, no account', async t => {
  const app = await oidcApp(t)
  const anonymous = person(op, { email: undefined, email_verified: undefined })
  const users = await count(sql`select count(*)::int as n from users`)
  const f = await flow(app, op, anonymous.sub, { state: 'mine' })
  assertRedirect(t, f.res)
  assertAnswer(t, f.location, WEB, { error: 'provider_email_missing', state: 'mine' })
  t.equal(await count(sql`select count(*)::int as n from users`), users)
  t.same(await identitiesOf(anonymous.sub), [])
})

t.test('our state: single use, ten minutes, for the provider it was issued for; failures are 400 problems, never redirects', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock, env: oidcEnv({ test: op, other: op }) })
  const someone = person(op)
  const stateRefused = (res: Awaited<ReturnType<typeof callback>>, what: string) => {
    assertProblem(t, res, 400, 'oauth_state_invalid')
    t.notOk(res.headers.location, `${what}: no redirect`)
  }

  // replay: the same answer of the provider twice
  const used = await flow(app, op, someone.sub)
  t.ok(used.location.searchParams.get('code'))
  stateRefused(await callback(app, used.back), 'replayed')

  // expiry: the provider's answer after more than ten minutes
  op.signInAs = someone.sub
  const late = await op.follow(String((await authorize(app, 'test')).headers.location))
  clock.advance(10 * 60_000 + 1000)
  stateRefused(await callback(app, late), 'expired')

  // still fine just inside the ten minutes
  const inTime = await op.follow(String((await authorize(app, 'test')).headers.location))
  clock.advance(10 * 60_000 - 1000)
  t.ok(new URL(String((await callback(app, inTime)).headers.location)).searchParams.get('code'), 'nine minutes and fifty-nine seconds is in time')

  // issued for another provider (the same issuer configured twice: only the id differs)
  const forTest = await op.follow(String((await authorize(app, 'test')).headers.location))
  stateRefused(await app.inject({ url: `/oauth/other/callback${forTest.search}` }), 'another provider\'s')

  // no state, an unknown one, and an error answer without a state
  stateRefused(await app.inject({ url: '/oauth/test/callback?code=abc' }), 'none')
  stateRefused(await app.inject({ url: `/oauth/test/callback?code=abc&state=${'A'.repeat(43)}` }), 'unknown')
  stateRefused(await app.inject({ url: '/oauth/test/callback?error=access_denied' }), 'error without state')
  assertProblem(t, await app.inject({ url: `/oauth/nope/callback${forTest.search}` }), 404, 'not_found')
  t.equal((await identitiesOf(someone.sub)).length, 1, 'only the first flow signed in')
  // a refusal like any other: one audit line each
  t.same(auditLines(app, 'identity_refused').map(l => [l.provider, l.code, l.level]), [
    ...['test', 'test', 'other', 'test', 'test', 'test'].map(provider => [provider, 'oauth_state_invalid', 40]),
  ])
})

t.test('the client\'s own state is handed back untouched, and left out when not sent', async t => {
  const app = await oidcApp(t)
  const someone = person(op)
  const odd = 'a b+c&d=e/é?#%20{"x":1}'
  const signedIn = await flow(app, op, someone.sub, { state: odd })
  assertAnswer(t, signedIn.location, WEB, { code: /.+/, state: odd })
  const none = await flow(app, op, someone.sub)
  assertAnswer(t, none.location, WEB, { code: /.+/ })
  op.deny = true
  const denied = await flow(app, op, someone.sub)
  assertAnswer(t, denied.location, WEB, { error: 'provider_denied' })
})

t.test('our one-time code: once, sixty seconds, only with the verifier of its challenge', async t => {
  const clock = fakeClock()
  const app = await oidcApp(t, { clock })
  const someone = person(op)
  const codeOf = (f: Awaited<ReturnType<typeof flow>>) => f.location.searchParams.get('code')!

  const replayed = await flow(app, op, someone.sub)
  t.equal((await exchange(app, { code: codeOf(replayed), codeVerifier: replayed.verifier })).statusCode, 200)
  assertProblem(t, await exchange(app, { code: codeOf(replayed), codeVerifier: replayed.verifier }), 400, 'oauth_code_invalid')

  const wrongVerifier = await flow(app, op, someone.sub)
  assertProblem(t, await exchange(app, { code: codeOf(wrongVerifier), codeVerifier: pkce().verifier }), 400, 'oauth_code_invalid')
  assertProblem(t, await exchange(app, { code: codeOf(wrongVerifier), codeVerifier: wrongVerifier.verifier }), 400, 'oauth_code_invalid')
  t.pass('a wrong verifier spends the code')

  const late = await flow(app, op, someone.sub)
  clock.advance(60_000)
  assertProblem(t, await exchange(app, { code: codeOf(late), codeVerifier: late.verifier }), 400, 'oauth_code_invalid')
  const inTime = await flow(app, op, someone.sub)
  clock.advance(59_000)
  t.equal((await exchange(app, { code: codeOf(inTime), codeVerifier: inTime.verifier })).statusCode, 200, 'fifty-nine seconds is in time')

  assertProblem(t, await exchange(app, { code: 'x'.repeat(43), codeVerifier: pkce().verifier }), 400, 'oauth_code_invalid')
  for (const bad of [{}, { code: 'abc' }, { code: '', codeVerifier: pkce().verifier }, { code: 'abc', codeVerifier: 'short' }, { code: 'abc', codeVerifier: pkce().verifier, extra: 1 }]) {
    assertProblem(t, await exchange(app, bad), 400, 'validation_failed')
  }
  t.equal(auditLines(app, 'login_failure').filter(l => l.method === 'fed' && l.code === 'oauth_code_invalid').length, 5)
})

t.test('an ID token with the wrong nonce, audience or issuer, expired, or badly signed: error=id_token_invalid, no account', async t => {
  const app = await oidcApp(t)
  const { privateKey: foreignKey } = await generateKeyPair('RS256')
  const cases: [string, (c: Record<string, unknown>) => Record<string, unknown>, boolean][] = [
    ['nonce', c => ({ ...c, nonce: 'another-nonce' }), false],
    ['audience', c => ({ ...c, aud: 'another-client' }), false],
    ['issuer', c => ({ ...c, iss: 'http://evil.example' }), false],
    ['expired', c => ({ ...c, iat: Math.floor(Date.now() / 1000) - 7200, exp: Math.floor(Date.now() / 1000) - 3600 }), false],
    ['signature', c => c, true],
  ]
  t.teardown(() => { op.tamper = undefined; op.signWith = undefined })
  for (const [label, tamper, foreign] of cases) {
    const victim = person(op)
    op.tamper = tamper
    op.signWith = foreign ? foreignKey : undefined
    const f = await flow(app, op, victim.sub, { state: label })
    assertRedirect(t, f.res)
    assertAnswer(t, f.location, WEB, { error: 'id_token_invalid', state: label })
    t.notOk(await userByEmail(victim.email!), `${label}: no account`)
    t.same(await identitiesOf(victim.sub), [], `${label}: no identity`)
  }
  op.tamper = undefined
  op.signWith = undefined
  t.equal(auditLines(app, 'identity_refused').filter(l => l.code === 'id_token_invalid').length, cases.length)
  // the same provider, untampered, signs in
  const fine = person(op)
  t.ok((await signInWith(app, op, fine.sub)).tokens.accessToken)
})

t.test('the provider\'s own answers: access_denied is provider_denied; an iss that is not the issuer is refused', async t => {
  const app = await oidcApp(t)
  const someone = person(op)
  op.deny = true
  const denied = await flow(app, op, someone.sub, { state: 'd' })
  assertRedirect(t, denied.res)
  assertAnswer(t, denied.location, WEB, { error: 'provider_denied', state: 'd' })
  t.same(await identitiesOf(someone.sub), [])
  t.match(auditLines(app, 'identity_refused'), [{ provider: 'test', code: 'provider_denied' }])

  // any other error of the provider
  const ours = new URL(String((await authorize(app, 'test', { state: 'e' })).headers.location)).searchParams.get('state')!
  const failed = await app.inject({ url: `/oauth/test/callback?error=temporarily_unavailable&error_description=later&state=${ours}` })
  assertRedirect(t, failed)
  assertAnswer(t, new URL(String(failed.headers.location)), WEB, { error: 'provider_error', state: 'e' })

  // RFC 9207: the iss of the answer is checked when present
  op.signInAs = someone.sub
  const back = await op.follow(String((await authorize(app, 'test', { state: 'i' })).headers.location))
  t.equal(back.searchParams.get('iss'), op.issuer, 'the provider sends iss')
  back.searchParams.set('iss', 'http://evil.example')
  const mixedUp = await callback(app, back)
  assertRedirect(t, mixedUp)
  const location = new URL(String(mixedUp.headers.location))
  t.notOk(location.searchParams.get('code'), 'no code')
  t.equal(location.searchParams.get('error'), 'provider_error')
  t.equal(location.searchParams.get('state'), 'i')
  t.same(await identitiesOf(someone.sub), [])
})

t.test('authorize refuses, as JSON problems: an unlisted redirect URI, a challenge that is missing or not S256, an unknown provider', async t => {
  const app = await oidcApp(t)
  const flows = () => count(sql`select count(*)::int as n from oauth_flows`)
  const before = await flows()
  for (const redirectUri of ['https://evil.example/oauth/callback', `${WEB}/`, `${WEB}?x=1`, 'https://APP.example.com/oauth/callback', 'com.example.app:/oauth2', 'http://app.example.com/oauth/callback']) {
    const res = await authorize(app, 'test', { redirectUri, state: 's' })
    assertProblem(t, res, 400, 'redirect_uri_invalid')
    t.notOk(res.headers.location, `${redirectUri}: not a redirect`)
  }
  for (const params of [{ method: undefined }, { method: 'plain' }, { method: 's256' }, { challenge: '' }, { challenge: 'short' }, { challenge: `${pkce().challenge}=` }]) {
    const res = await authorize(app, 'test', params)
    assertProblem(t, res, 400, 'validation_failed')
    t.notOk(res.headers.location)
  }
  assertProblem(t, await app.inject({ url: '/oauth/test/authorize' }), 400, 'validation_failed')
  assertProblem(t, await authorize(app, 'nope'), 404, 'not_found')
  assertProblem(t, await authorize(app, 'Test'), 404, 'not_found')
  t.equal(await flows(), before, 'no flow was started')
})

t.test('a provider that is down answers 503 on its own routes only; once it is back, the flow works without a restart', async t => {
  const clock = fakeClock()
  const port = await freePort()
  const laterAt = { issuer: `http://127.0.0.1:${port}`, clientId: 'later-client', clientSecret: 'a-secret-for-the-later-provider' }
  const app = await build(t, { clock, env: oidcEnv({ test: op, later: laterAt }, { OIDC_LATER_NAME: 'Later' }) })

  const down = await authorize(app, 'later', { state: 's' })
  assertProblem(t, down, 503, 'provider_unavailable')
  t.notOk(down.headers.location)
  assertProblem(t, await authorize(app, 'later'), 503, 'provider_unavailable')
  const { tokens: local } = await register(app)
  assertProblem(t, await call(app, 'POST', '/me/identities/later', local.accessToken, { redirectUri: WEB, codeChallenge: pkce().challenge }), 503, 'provider_unavailable')
  assertProblem(t, await authorize(app, 'later', { redirectUri: 'https://evil.example/cb' }), 400, 'redirect_uri_invalid')
  t.same((await app.inject({ url: '/oauth/providers' })).json(), { providers: [{ id: 'test', name: 'test' }, { id: 'later', name: 'Later' }] }, 'still listed')
  const someone = person(op)
  t.ok((await signInWith(app, op, someone.sub)).tokens.accessToken, 'the other provider still works')

  const later = await startTestProvider({ port, clientId: laterAt.clientId, clientSecret: laterAt.clientSecret, redirectUris: [callbackFor('later')] })
  t.teardown(() => later.stop())
  clock.advance(30_000 + 1)
  const newcomer = person(later)
  const back = await signInWith(app, later, newcomer.sub, { provider: 'later', state: 'back' })
  assertAnswer(t, back.location, WEB, { code: /.+/, state: 'back' })
  t.match(await identitiesOf(newcomer.sub), [{ provider: 'later', user_id: back.tokens.user.id }])

  // the token endpoint down when the provider sends the browser back
  later.signInAs = newcomer.sub
  const answer = await later.follow(String((await authorize(app, 'later', { state: 'cut' })).headers.location))
  await later.stop()
  const cut = await callback(app, answer)
  assertRedirect(t, cut)
  assertAnswer(t, new URL(String(cut.headers.location)), WEB, { error: 'provider_unavailable', state: 'cut' })
  t.match(auditLines(app, 'identity_refused').at(-1), { provider: 'later', code: 'provider_unavailable' })
  await later.start()
})

t.test('the two-factor rule: an account with TOTP finishes with /login/mfa (aal2, fed+otp)', async t => {
  const clock = fakeClock()
  const app = await oidcApp(t, { clock })
  const someone = person(op)
  const first = await signInWith(app, op, someone.sub)
  const { secret } = await enableTotp(app, first.tokens.accessToken, clock.now())
  clock.advance(30_000)

  const f = await flow(app, op, someone.sub)
  const res = await exchange(app, { code: f.location.searchParams.get('code'), codeVerifier: f.verifier, rememberMe: true }, COOKIE)
  const body = assertProblem(t, res, 403, 'mfa_required')
  t.match(body.mfaToken, /^[A-Za-z0-9_-]{43,}$/)
  t.same(body.methods, ['totp', 'recovery_code'])
  t.notOk('accessToken' in body || res.headers['set-cookie'], 'no tokens, no cookie')
  t.match(auditLines(app, 'login_mfa_required').at(-1), { method: 'fed' })

  const done = await loginMfa(app, { mfaToken: body.mfaToken, code: totp(secret, clock.now()) })
  t.equal(done.statusCode, 200)
  const tokens = done.json() as TokenBody
  t.equal(tokens.user.id, first.tokens.user.id)
  t.match(claims(tokens.accessToken), { aal: 'aal2', amr: ['fed', 'otp'] })
  t.equal(tokens.refreshExpiresIn, 2_592_000, 'rememberMe as given to /oauth/token')
  const sessions = (await listSessions(app, tokens.accessToken)).json().sessions as { current: boolean, aal: string }[]
  t.match(sessions.find(s => s.current), { aal: 'aal2', rememberMe: true })
  t.match(claims(first.tokens.accessToken), { aal: 'aal1', amr: ['fed'] })
})

t.test('cookie mode and rememberMe on /oauth/token', async t => {
  const app = await oidcApp(t, { env: { CORS_ORIGINS: 'https://app.example.com' } })
  const someone = person(op)
  const cookieOf = (res: { headers: Record<string, unknown> }) => ([] as string[]).concat((res.headers['set-cookie'] as string[] | string | undefined) ?? []).find(c => c.startsWith('__Host-refresh='))

  const plain = await flow(app, op, someone.sub)
  const res = await exchange(app, { code: plain.location.searchParams.get('code'), codeVerifier: plain.verifier }, COOKIE)
  t.equal(res.statusCode, 200)
  t.same(Object.keys(res.json()).sort(), ['accessToken', 'expiresIn', 'tokenType', 'user'], 'no refresh token in the body')
  const line = cookieOf(res)!
  t.match(line, /^__Host-refresh=[A-Za-z0-9_-]{71}; /)
  t.notMatch(line.toLowerCase(), /max-age/, 'a browser-session cookie without rememberMe')
  const value = line.split(';')[0]!.slice('__Host-refresh='.length)
  const refreshed = await app.inject({ method: 'POST', url: '/refresh', headers: { ...COOKIE, origin: 'https://app.example.com', cookie: `__Host-refresh=${value}` } })
  t.equal(refreshed.statusCode, 200, 'the cookie refreshes')
  t.match(claims(refreshed.json().accessToken), { aal: 'aal1', amr: ['fed'] }, 'a refresh keeps aal and amr')

  const remembered = await flow(app, op, someone.sub)
  const kept = await exchange(app, { code: remembered.location.searchParams.get('code'), codeVerifier: remembered.verifier, rememberMe: true }, COOKIE)
  t.match(cookieOf(kept)!.toLowerCase(), /max-age=2592000/, 'persistent with rememberMe')

  const body = (await signInWith(app, op, someone.sub, {}, { rememberMe: true })).tokens
  t.equal(body.refreshExpiresIn, 2_592_000)
  t.match((await listSessions(app, body.accessToken)).json().sessions.find((s: { current: boolean }) => s.current), { rememberMe: true })
})

t.test('/oauth/token shares /login\'s per-IP limit', async t => {
  const app = await oidcApp(t, { env: { RATE_LIMIT_LOGIN_IP: '3' } })
  for (let i = 0; i < 2; i++) t.equal((await app.inject({ method: 'POST', url: '/login', payload: { email: 'nobody@example.com', password: 'not a password at all' } })).statusCode, 401)
  assertProblem(t, await exchange(app, { code: 'x'.repeat(43), codeVerifier: pkce().verifier }), 400, 'oauth_code_invalid')
  assertProblem(t, await exchange(app, { code: 'x'.repeat(43), codeVerifier: pkce().verifier }), 429, 'too_many_requests')
  assertProblem(t, await app.inject({ method: 'POST', url: '/login', payload: { email: 'nobody@example.com', password: 'not a password at all' } }), 429, 'too_many_requests')
})

t.test('nothing from the provider, nor our state, code or tokens, reaches a log line', async t => {
  const app = await oidcApp(t)
  const secrets: [string, string][] = []
  const keep = (what: string, value: string | null | undefined) => { if (value) secrets.push([what, value]) }
  const record = (f: Awaited<ReturnType<typeof flow>>) => {
    const to = new URL(String(f.start.headers.location))
    keep('our state', to.searchParams.get('state'))
    keep('our nonce', to.searchParams.get('nonce'))
    keep('our challenge to the provider', to.searchParams.get('code_challenge'))
    keep('the provider\'s code', f.back.searchParams.get('code'))
    keep('our one-time code', f.location.searchParams.get('code'))
    keep('the client\'s verifier', f.verifier)
  }
  const someone = person(op)
  const signedIn = await signInWith(app, op, someone.sub, { state: 'client-state' })
  record(signedIn)
  keep('access token', signedIn.tokens.accessToken)
  keep('refresh token', signedIn.tokens.refreshToken)
  // a refused exchange, a refused ID token and a replayed state log their refusals, not their values
  const refused = await flow(app, op, someone.sub)
  record(refused)
  await exchange(app, { code: refused.location.searchParams.get('code'), codeVerifier: pkce().verifier })
  await callback(app, refused.back)
  op.tamper = c => ({ ...c, nonce: 'x' })
  t.teardown(() => { op.tamper = undefined })
  const tampered = await flow(app, op, someone.sub)
  op.tamper = undefined
  record(tampered)

  t.ok(secrets.length >= 14)
  const log = app.logs.join('')
  for (const [what, value] of secrets) t.notOk(log.includes(value), `no ${what} in the log`)
  t.match(log, /"url":"\/oauth\/test\/callback\?code=\[redacted\]&state=\[redacted\]&iss=\[redacted\]"/, 'the callback\'s request line names its parameters only')
})
