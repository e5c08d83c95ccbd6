import { randomUUID } from 'node:crypto'
import { sql } from 'drizzle-orm'
import t from 'tap'
import {
  assertProblem, build, call, fakeClock, forgotPassword, login, me, refresh, register, resetPassword, rows, signIn,
  type TestApp, type TokenBody,
} from './helper.js'
import { auditLines, callbackFor, exchange, flow, mailedToken, oidcEnv, person, pkce, signInWith, WEB } from './oidc-flow.js'
import { startTestProvider, type TestProvider } from './oidc-provider.js'
import { softAuthenticator } from './webauthn-authenticator.js'

// What an account has to do with its identity providers: linking one while signed in, unlinking (never
// the last way to sign in), and the account an identity provider made, which has no password.

const op = await startTestProvider({ redirectUris: [callbackFor('test')] })
t.teardown(() => op.stop())

const RESET = 'Reset your password'
/** The passkey origin of the test settings (no APP_URL: http://localhost:PORT). */
const PASSKEY_ORIGIN = 'http://localhost:3000'
const WINDOW = 10 * 60_000

const oidcApp = (t: Parameters<typeof build>[0], extra: { env?: Record<string, string>, clock?: ReturnType<typeof fakeClock> } = {}) =>
  build(t, { env: oidcEnv({ test: op }, extra.env), ...(extra.clock ? { clock: extra.clock } : {}) })

const identitiesOfUser = (userId: string) => rows<{ id: string, subject: string }>(sql`select id, subject from identities where user_id = ${userId} order by created_at, id`)
const listIdentities = async (app: TestApp, token: string) => {
  const res = await call(app, 'GET', '/me/identities', token)
  if (res.statusCode !== 200) throw new Error(`list: ${res.statusCode} ${res.body}`)
  return (res.json() as { identities: { id: string, provider: string, email: string | null, createdAt: string }[] }).identities
}
const unlink = (app: TestApp, token: string, id: string) => call(app, 'DELETE', `/me/identities/${id}`, token)
const passwordState = async (userId: string) => (await rows<{ no_password: boolean }>(sql`select password_hash is null as no_password from users where id = ${userId}`))[0]?.no_password

/** POST /me/identities/<id>, then the provider's pages signed in as `sub`, then the callback. */
async function link (app: TestApp, provider: TestProvider, token: string, sub: string, body: Record<string, unknown> = {}) {
  const started = await call(app, 'POST', '/me/identities/test', token, { redirectUri: WEB, codeChallenge: pkce().challenge, ...body })
  if (started.statusCode !== 200) throw new Error(`link: ${started.statusCode} ${started.body}`)
  const { authorizeUrl } = started.json() as { authorizeUrl: string }
  provider.signInAs = sub
  const back = await provider.follow(authorizeUrl)
  const res = await app.inject({ url: back.pathname + back.search })
  return { started, authorizeUrl, res, location: new URL(String(res.headers.location)) }
}

/** A new account made through the provider: the person, and a session (a fresh sign-in). */
async function providerAccount (app: TestApp) {
  const someone = person(op)
  const { tokens } = await signInWith(app, op, someone.sub)
  return { someone, tokens }
}

t.test('linking while signed in: authorizeUrl, then the callback links and redirects with linked=<id>', async t => {
  const app = await oidcApp(t)
  const { body: account, tokens } = await register(app)
  const theirs = person(op)

  const linked = await link(app, op, tokens.accessToken, theirs.sub, { state: 'link-1' })
  t.equal(linked.started.headers['cache-control'], 'no-store')
  t.same(Object.keys(linked.started.json()), ['authorizeUrl'])
  const to = new URL(linked.authorizeUrl)
  t.equal(`${to.origin}${to.pathname}`, `${op.issuer}/auth`)
  t.match(Object.fromEntries(to.searchParams), { response_type: 'code', client_id: op.clientId, redirect_uri: callbackFor('test'), code_challenge_method: 'S256' })
  t.equal(linked.res.statusCode, 302)
  t.equal(linked.res.headers['cache-control'], 'no-store')
  t.equal(linked.res.headers['referrer-policy'], 'no-referrer')
  t.equal(`${linked.location.origin}${linked.location.pathname}`, WEB)
  t.same(Object.fromEntries(linked.location.searchParams), { linked: 'test', state: 'link-1' }, 'no code: a link signs nobody in')
  t.match(auditLines(app, 'identity_linked'), [{ provider: 'test', userId: tokens.user.id, linkedBy: 'signed_in_user' }])

  const listed = await listIdentities(app, tokens.accessToken)
  t.equal(listed.length, 1)
  t.same(Object.keys(listed[0]!).sort(), ['createdAt', 'email', 'id', 'provider'])
  t.match(listed[0], { provider: 'test', email: theirs.email, createdAt: /^\d{4}-\d\d-\d\dT/ })
  t.same((await identitiesOfUser(tokens.user.id)).map(i => i.id), [listed[0]!.id])

  // the provider now signs in to this account, whatever its email says
  const viaProvider = await signInWith(app, op, theirs.sub)
  t.equal(viaProvider.tokens.user.id, tokens.user.id)
  t.equal(viaProvider.tokens.user.email, account.email)
  // linking it again to the same account changes nothing
  const again = await link(app, op, tokens.accessToken, theirs.sub)
  t.same(Object.fromEntries(again.location.searchParams), { linked: 'test' })
  t.equal((await listIdentities(app, tokens.accessToken)).length, 1)

  // another account cannot take it
  const other = (await register(app)).tokens
  const taken = await link(app, op, other.accessToken, theirs.sub, { state: 'x' })
  t.equal(taken.res.statusCode, 302)
  t.same(Object.fromEntries(taken.location.searchParams), { error: 'identity_taken', state: 'x' })
  t.same(await listIdentities(app, other.accessToken), [])
  t.same((await identitiesOfUser(tokens.user.id)).length, 1, 'still the first account\'s')
  t.match(auditLines(app, 'identity_refused').at(-1), { provider: 'test', userId: other.user.id, code: 'identity_taken' })

  // refusals before the provider
  const start = (body: Record<string, unknown>, id = 'test', token = tokens.accessToken) => call(app, 'POST', `/me/identities/${id}`, token, body)
  const good = { redirectUri: WEB, codeChallenge: pkce().challenge }
  assertProblem(t, await app.inject({ method: 'POST', url: '/me/identities/test', payload: good }), 401, 'invalid_token')
  assertProblem(t, await start(good, 'nope'), 404, 'not_found')
  assertProblem(t, await start({ ...good, redirectUri: 'https://evil.example/cb' }), 400, 'redirect_uri_invalid')
  assertProblem(t, await start({ redirectUri: WEB }), 400, 'validation_failed')
  assertProblem(t, await start({ ...good, codeChallenge: 'plain-text-challenge' }), 400, 'validation_failed')
  assertProblem(t, await app.inject({ url: '/me/identities' }), 401, 'invalid_token')

  // a provider that gives no email can still be linked to a signed-in account
  const anonymous = person(op, { email: undefined, email_verified: undefined })
  t.same(Object.fromEntries((await link(app, op, other.accessToken, anonymous.sub)).location.searchParams), { linked: 'test' })
  t.match(await listIdentities(app, other.accessToken), [{ provider: 'test', email: null }])
})

t.test('unlink: 204, but never the last way to sign in; another\'s, unknown or malformed ids are 404', async t => {
  const app = await oidcApp(t)
  const { tokens } = await providerAccount(app)
  const [only] = await listIdentities(app, tokens.accessToken)

  // the only way to sign in
  assertProblem(t, await unlink(app, tokens.accessToken, only!.id), 409, 'last_sign_in_method')
  t.equal((await listIdentities(app, tokens.accessToken)).length, 1, 'still linked')
  t.match(auditLines(app, 'identity_unlink_refused').at(-1), { userId: tokens.user.id, code: 'last_sign_in_method' })

  // another identity: either may go, not both
  const second = person(op)
  t.same(Object.fromEntries((await link(app, op, tokens.accessToken, second.sub)).location.searchParams), { linked: 'test' })
  const res = await unlink(app, tokens.accessToken, only!.id.toUpperCase())
  t.equal(res.statusCode, 204)
  t.equal(res.body, '')
  t.same((await identitiesOfUser(tokens.user.id)).map(i => i.subject), [second.sub])
  t.match(auditLines(app, 'identity_unlinked').at(-1), { userId: tokens.user.id, identityId: only!.id })
  const [left] = await listIdentities(app, tokens.accessToken)
  assertProblem(t, await unlink(app, tokens.accessToken, left!.id), 409, 'last_sign_in_method')

  // a password: the last identity may go
  t.equal((await call(app, 'POST', '/me/password', tokens.accessToken, { newPassword: 'a first password for this account' })).statusCode, 204)
  t.equal((await unlink(app, tokens.accessToken, left!.id)).statusCode, 204)
  t.same(await listIdentities(app, tokens.accessToken), [])

  // ids that are not the caller's
  const stranger = await providerAccount(app)
  const [theirs] = await listIdentities(app, stranger.tokens.accessToken)
  for (const id of [theirs!.id, randomUUID(), 'not-a-uuid', '1', `${theirs!.id}x`]) assertProblem(t, await unlink(app, tokens.accessToken, id), 404, 'not_found')
  t.equal((await listIdentities(app, stranger.tokens.accessToken)).length, 1, 'the other account\'s identity stays')
  assertProblem(t, await app.inject({ method: 'DELETE', url: `/me/identities/${theirs!.id}` }), 401, 'invalid_token')
})

t.test('a passkey is a way to sign in too: the identity may go, then the passkey may not', async t => {
  const app = await oidcApp(t)
  const { tokens } = await providerAccount(app)
  const options = (await call(app, 'POST', '/passkeys/register/options', tokens.accessToken)).json()
  const added = await call(app, 'POST', '/passkeys/register', tokens.accessToken, { response: softAuthenticator().register(options, { origin: PASSKEY_ORIGIN }) })
  t.equal(added.statusCode, 201)
  const [identity] = await listIdentities(app, tokens.accessToken)
  t.equal((await unlink(app, tokens.accessToken, identity!.id)).statusCode, 204, 'the passkey still signs in')
  assertProblem(t, await call(app, 'DELETE', `/passkeys/${added.json().id}`, tokens.accessToken), 409, 'last_sign_in_method')
  t.equal((await me(app, tokens.accessToken)).json().mfa.passkeys, 1, 'the passkey stays')
})

t.test('an account made through a provider has no password: /login is the usual 401, a reset sets one', async t => {
  const app = await oidcApp(t)
  const { someone, tokens } = await providerAccount(app)
  t.equal(await passwordState(tokens.user.id), true)
  const unknown = await login(app, { email: 'nobody-at-all@example.com', password: 'whatever it may be' })
  for (const password of ['whatever it may be', 'x', '']) {
    const res = await login(app, { email: someone.email, password })
    t.same(assertProblem(t, res, 401, 'invalid_credentials'), unknown.json(), `"${password}": the body of an unknown account`)
  }

  t.equal((await forgotPassword(app, someone.email!)).statusCode, 202)
  const newPassword = 'a password set through the reset link'
  t.equal((await resetPassword(app, await mailedToken(app, someone.email!, RESET), newPassword)).statusCode, 204)
  t.equal(await passwordState(tokens.user.id), false)
  const signedIn = await signIn(app, { email: someone.email!, password: newPassword })
  t.equal(signedIn.user.id, tokens.user.id, 'the password signs in')
  t.equal((await signInWith(app, op, someone.sub)).tokens.user.id, tokens.user.id, 'and the provider still does')
})

t.test('POST /me/password without currentPassword: within ten minutes of the sign-in for an account without one', async t => {
  const clock = fakeClock()
  const app = await oidcApp(t, { clock })
  const { someone, tokens } = await providerAccount(app)
  const elsewhere = (await signInWith(app, op, someone.sub)).tokens
  const newPassword = 'the first password of this account'

  clock.advance(WINDOW)
  const res = await call(app, 'POST', '/me/password', tokens.accessToken, { newPassword })
  t.equal(res.statusCode, 204, 'ten minutes after the sign-in is still recent')
  t.equal((await me(app, tokens.accessToken)).statusCode, 200, 'this session stays')
  assertProblem(t, await me(app, elsewhere.accessToken), 401, 'session_revoked')
  t.equal((await signIn(app, { email: someone.email!, password: newPassword })).user.id, tokens.user.id)
  t.match(auditLines(app, 'password_changed').at(-1), { userId: tokens.user.id, otherSessionsEnded: 1 })
  // now it has one, and it is asked for
  assertProblem(t, await call(app, 'POST', '/me/password', tokens.accessToken, { newPassword: 'yet another new password here' }), 400, 'validation_failed')

  // a sign-in older than ten minutes (a refresh does not renew it); a new sign-in does
  const late = await providerAccount(app)
  clock.advance(WINDOW + 1000)
  const refreshed = (await refresh(app, late.tokens.refreshToken)).json() as TokenBody
  for (const token of [late.tokens.accessToken, refreshed.accessToken]) {
    assertProblem(t, await call(app, 'POST', '/me/password', token, { newPassword }), 403, 'reauthentication_required')
  }
  t.equal(await passwordState(late.tokens.user.id), true, 'still no password')
  t.match(auditLines(app, 'password_change_failed').at(-1), { userId: late.tokens.user.id, code: 'reauthentication_required' })
  const fresh = (await signInWith(app, op, late.someone.sub)).tokens
  t.equal((await call(app, 'POST', '/me/password', fresh.accessToken, { newPassword })).statusCode, 204)
})

t.test('DELETE /me without currentPassword (or any body): within ten minutes of the sign-in for an account without a password', async t => {
  const clock = fakeClock()
  const app = await oidcApp(t, { clock })
  const gone = await providerAccount(app)
  const res = await app.inject({ method: 'DELETE', url: '/me', headers: { authorization: `Bearer ${gone.tokens.accessToken}` } })
  t.equal(res.statusCode, 204, 'no body at all')
  t.same(await rows(sql`select id from users where id = ${gone.tokens.user.id}`), [])
  t.same(await rows(sql`select id from identities where subject = ${gone.someone.sub}`), [], 'its identities go with it')
  const withEmptyBody = await providerAccount(app)
  t.equal((await call(app, 'DELETE', '/me', withEmptyBody.tokens.accessToken, {})).statusCode, 204, 'an empty body')

  const late = await providerAccount(app)
  clock.advance(WINDOW + 1000)
  assertProblem(t, await app.inject({ method: 'DELETE', url: '/me', headers: { authorization: `Bearer ${late.tokens.accessToken}` } }), 403, 'reauthentication_required')
  assertProblem(t, await call(app, 'DELETE', '/me', late.tokens.accessToken, {}), 403, 'reauthentication_required')
  t.equal((await rows(sql`select id from users where id = ${late.tokens.user.id}`)).length, 1, 'still there')
  t.match(auditLines(app, 'account_delete_failed').at(-1), { userId: late.tokens.user.id, code: 'reauthentication_required' })

  // an account with a password is asked for it, as before
  const { tokens } = await register(app)
  assertProblem(t, await app.inject({ method: 'DELETE', url: '/me', headers: { authorization: `Bearer ${tokens.accessToken}` } }), 400, 'validation_failed')
  assertProblem(t, await call(app, 'DELETE', '/me', tokens.accessToken, {}), 400, 'validation_failed')
  assertProblem(t, await call(app, 'POST', '/me/password', tokens.accessToken, { newPassword: 'a new password without the old' }), 400, 'validation_failed')
  t.equal((await me(app, tokens.accessToken)).statusCode, 200)
})

t.test('REQUIRE_EMAIL_VERIFICATION: an unverified provider email gets no session', async t => {
  const app = await oidcApp(t, { env: { REQUIRE_EMAIL_VERIFICATION: 'true' } })
  const unverified = person(op, { email_verified: false })
  const f = await flow(app, op, unverified.sub)
  const res = await exchange(app, { code: f.location.searchParams.get('code'), codeVerifier: f.verifier })
  assertProblem(t, res, 403, 'email_not_verified')
  t.notOk(res.headers['set-cookie'])
  const [user] = await rows<{ id: string }>(sql`select id from users where email = ${unverified.email!}`)
  t.same(await rows(sql`select id from sessions where user_id = ${user!.id}`), [], 'no session')
  t.match(auditLines(app, 'login_failure').at(-1), { method: 'fed', code: 'email_not_verified' })
  const verified = person(op)
  t.ok((await signInWith(app, op, verified.sub)).tokens.accessToken, 'a verified one signs in')
})

t.test('an account made from an unverified provider email: the reset of its mailbox owner unlinks that identity, a vouched one stays', async t => {
  const app = await oidcApp(t)
  // someone signs in with an email the provider does not vouch for: a new, unverified account
  const squatter = person(op, { email_verified: false })
  const made = await signInWith(app, op, squatter.sub)
  const userId = made.tokens.user.id
  t.same((await identitiesOfUser(userId)).map(i => i.subject), [squatter.sub])
  // the owner of the mailbox resets the password
  t.equal((await forgotPassword(app, squatter.email!)).statusCode, 202)
  t.equal((await resetPassword(app, await mailedToken(app, squatter.email!, RESET), 'the real owner of this mailbox')).statusCode, 204)
  t.same(await identitiesOfUser(userId), [], 'the unvouched identity is unlinked')
  // the provider account comes back: its unverified claim to the owner's address links nothing
  const again = await flow(app, op, squatter.sub)
  t.equal(again.location.searchParams.get('error'), 'email_taken')
  t.equal(again.location.searchParams.get('code'), null)
  t.same(await identitiesOfUser(userId), [])
})

t.test('a vouched identity survives a password reset', async t => {
  const app = await oidcApp(t)
  const someone = person(op)
  const made = await signInWith(app, op, someone.sub)
  t.equal((await forgotPassword(app, someone.email!)).statusCode, 202)
  t.equal((await resetPassword(app, await mailedToken(app, someone.email!, RESET), 'a password set by a reset')).statusCode, 204)
  t.same((await identitiesOfUser(made.tokens.user.id)).map(i => i.subject), [someone.sub])
  const back = await signInWith(app, op, someone.sub)
  t.equal(back.tokens.user.id, made.tokens.user.id)
})

t.test('a failure of ours at the callback still goes back to the client, as error=internal_error', async t => {
  const app = await oidcApp(t)
  const someone = person(op, { email_verified: false })
  const { challenge } = pkce()
  const start = await app.inject({ method: 'GET', url: `/oauth/test/authorize?redirect_uri=${encodeURIComponent(WEB)}&code_challenge=${challenge}&code_challenge_method=S256&state=s1` })
  op.signInAs = someone.sub
  const back = await op.follow(String(start.headers.location))
  // the verification mail of the new account cannot be queued
  await rows(sql`alter table outbox add constraint outbox_refuse_all check (false) not valid`)
  t.teardown(() => rows(sql`alter table outbox drop constraint if exists outbox_refuse_all`))
  const res = await app.inject({ method: 'GET', url: back.pathname + back.search })
  t.equal(res.statusCode, 302)
  const to = new URL(String(res.headers.location))
  t.equal(to.origin + to.pathname, WEB)
  t.equal(to.searchParams.get('error'), 'internal_error')
  t.equal(to.searchParams.get('state'), 's1')
  t.same(await rows(sql`select 1 from users where email = ${someone.email}`), [], 'nothing was made')
  t.ok(app.logs.some(l => l.includes('identity-provider callback failed')), 'the cause is logged')
})

t.test('two first sign-ins of one new identity at once: both sign in, to one account', async t => {
  const app = await oidcApp(t)
  const someone = person(op)
  const flows = await Promise.all([0, 1].map(async () => {
    const { verifier, challenge } = pkce()
    const start = await app.inject({ method: 'GET', url: `/oauth/test/authorize?redirect_uri=${encodeURIComponent(WEB)}&code_challenge=${challenge}&code_challenge_method=S256` })
    op.signInAs = someone.sub
    return { verifier, back: await op.follow(String(start.headers.location)) }
  }))
  const answers = await Promise.all(flows.map(f => app.inject({ method: 'GET', url: f.back.pathname + f.back.search })))
  const codes = answers.map(a => new URL(String(a.headers.location)).searchParams.get('code'))
  t.ok(codes.every(Boolean), `both got a code (${answers.map(a => a.headers.location).join(' ')})`)
  const tokens = await Promise.all(codes.map((code, i) => exchange(app, { code, codeVerifier: flows[i]!.verifier })))
  t.same(tokens.map(r => r.statusCode), [200, 200])
  t.equal(new Set(tokens.map(r => (r.json() as TokenBody).user.id)).size, 1, 'one account')
  t.equal((await rows(sql`select 1 from identities where subject = ${someone.sub}`)).length, 1)
})
