import { sql } from 'drizzle-orm'
import t from 'tap'
import { assertProblem, bearer, build, fakeClock, logout, me, newAccount, refresh, register, rows, type TestApp, type TokenBody } from './helper.js'

async function signInTwice (app: TestApp) {
  const account = newAccount()
  const first = (await register(app, account)).tokens
  const second = (await app.inject({ method: 'POST', url: '/login', payload: { email: account.email, password: account.password } })).json() as TokenBody
  return { first, second }
}

t.test('local by refresh token ends that session only', async t => {
  const app = await build(t)
  const { first, second } = await signInTwice(app)
  const res = await logout(app, { refreshToken: first.refreshToken })
  t.equal(res.statusCode, 204)
  t.equal(res.body, '')
  t.equal(res.headers['cache-control'], 'no-store')
  assertProblem(t, await me(app, first.accessToken), 401, 'session_revoked')
  assertProblem(t, await refresh(app, first.refreshToken), 401, 'session_revoked')
  t.equal((await me(app, second.accessToken)).statusCode, 200, 'the other session stays signed in')
  const [row] = await rows<{ revoked_reason: string }>(sql`select revoked_reason from sessions where user_id = ${first.user.id} and revoked_at is not null`)
  t.equal(row!.revoked_reason, 'logout')
})

t.test('local by bearer token alone, with no body at all', async t => {
  const app = await build(t)
  const { first, second } = await signInTwice(app)
  t.equal((await logout(app, undefined, bearer(first.accessToken))).statusCode, 204)
  assertProblem(t, await refresh(app, first.refreshToken), 401, 'session_revoked')
  t.equal((await me(app, second.accessToken)).statusCode, 200)
})

t.test('an expired access token still signs out; an invalid one does not fail local logout', async t => {
  const past = fakeClock(Date.now() - 3600_000)
  const old = await build(t, { clock: past })
  const { tokens } = await register(old)
  const app = await build(t)
  t.equal((await logout(app, {}, bearer(tokens.accessToken))).statusCode, 204)
  assertProblem(t, await refresh(app, tokens.refreshToken), 401, 'session_revoked')

  const other = (await register(app)).tokens
  t.equal((await logout(app, { refreshToken: other.refreshToken }, bearer('garbage.token.here'))).statusCode, 204)
  assertProblem(t, await refresh(app, other.refreshToken), 401, 'session_revoked')
})

t.test('idempotent: unknown, spent and already revoked tokens get 204', async t => {
  const app = await build(t)
  const { tokens } = await register(app)
  t.equal((await logout(app, { refreshToken: 'A'.repeat(43) })).statusCode, 204)
  t.equal((await logout(app, { refreshToken: 'nonsense' })).statusCode, 204)
  t.equal((await logout(app, {})).statusCode, 204)
  const next = (await refresh(app, tokens.refreshToken)).json() as TokenBody
  t.equal((await logout(app, { refreshToken: tokens.refreshToken })).statusCode, 204, 'a spent token')
  t.equal((await logout(app, { refreshToken: tokens.refreshToken })).statusCode, 204, 'again')
  assertProblem(t, await refresh(app, next.refreshToken), 401, 'session_revoked')
})

t.test('others and global need a valid access token', async t => {
  const app = await build(t)
  const { first } = await signInTwice(app)
  for (const scope of ['others', 'global']) {
    const none = await logout(app, { scope })
    assertProblem(t, none, 401, 'invalid_token')
    t.equal(none.headers['www-authenticate'], 'Bearer realm="api"')
    const bad = await logout(app, { scope }, bearer('bad.token.value'))
    assertProblem(t, bad, 401, 'invalid_token')
    t.equal(bad.headers['www-authenticate'], 'Bearer realm="api", error="invalid_token"')
  }
  t.equal((await me(app, first.accessToken)).statusCode, 200, 'nothing was revoked')
})

t.test('others keeps this session; global ends all', async t => {
  const app = await build(t)
  const account = newAccount()
  const a = (await register(app, account)).tokens
  const signIn = async () => (await app.inject({ method: 'POST', url: '/login', payload: { email: account.email, password: account.password } })).json() as TokenBody
  const b = await signIn()
  const c = await signIn()
  const stranger = (await register(app)).tokens

  t.equal((await logout(app, { scope: 'others' }, bearer(a.accessToken))).statusCode, 204)
  t.equal((await me(app, a.accessToken)).statusCode, 200)
  assertProblem(t, await me(app, b.accessToken), 401, 'session_revoked')
  assertProblem(t, await me(app, c.accessToken), 401, 'session_revoked')

  const d = await signIn()
  t.equal((await logout(app, { scope: 'global' }, bearer(d.accessToken))).statusCode, 204)
  assertProblem(t, await me(app, a.accessToken), 401, 'session_revoked')
  assertProblem(t, await me(app, d.accessToken), 401, 'session_revoked')
  t.equal((await me(app, stranger.accessToken)).statusCode, 200, 'other users are untouched')
})

t.test('bad logout input is a 400 problem', async t => {
  const app = await build(t)
  assertProblem(t, await logout(app, { scope: 'everything' }), 400, 'validation_failed')
  assertProblem(t, await logout(app, { refreshToken: 5 }), 400, 'validation_failed')
  assertProblem(t, await logout(app, { extra: true }), 400, 'validation_failed')
})
