import { sql } from 'drizzle-orm'
import { mock } from 'node:test'
import t from 'tap'
import { assertProblem, bearer, build, fakeClock, login, newAccount, register, rows, type TestApp } from './helper.js'

t.test('signs in with email or username, and rememberMe', async t => {
  const app = await build(t)
  const { body: account, tokens } = await register(app, newAccount({ username: 'Login_User' }))
  const byEmail = await login(app, { email: `  ${account.email.toUpperCase()}`, password: account.password })
  t.equal(byEmail.statusCode, 200)
  t.equal(byEmail.headers['cache-control'], 'no-store')
  const body = byEmail.json()
  t.same(body.user, tokens.user)
  t.equal(body.tokenType, 'Bearer')
  t.equal(body.refreshExpiresIn, 43_200)
  t.not(body.refreshToken, tokens.refreshToken)

  const byUsername = await login(app, { username: 'login_user', password: account.password, rememberMe: true })
  t.equal(byUsername.statusCode, 200)
  t.equal(byUsername.json().refreshExpiresIn, 2_592_000)
  t.equal((await app.inject({ url: '/me', headers: bearer(byUsername.json().accessToken) })).statusCode, 200)

  const sessions = await rows<{ n: number }>(sql`select count(*)::int as n from sessions where user_id = ${tokens.user.id} and revoked_at is null`)
  t.equal(sessions[0]!.n, 3, 'each sign-in is its own session')
})

t.test('NFKC-equivalent passwords sign in', async t => {
  const app = await build(t)
  const { body } = await register(app, newAccount({ password: 'ﬁﬁﬁﬁﬁﬁﬁﬁ and more' }))
  t.equal((await login(app, { email: body.email, password: 'fifififififififi and more' })).statusCode, 200)
})

t.test('unknown account and wrong password look the same', async t => {
  const app = await build(t)
  const { body: account } = await register(app)
  const wrong = await login(app, { email: account.email, password: 'not the right password' })
  const unknown = await login(app, { email: 'nobody-here@example.com', password: 'not the right password' })
  const unknownUser = await login(app, { username: 'nobody_here', password: 'not the right password' })
  const a = assertProblem(t, wrong, 401, 'invalid_credentials')
  const b = assertProblem(t, unknown, 401, 'invalid_credentials')
  const c = assertProblem(t, unknownUser, 401, 'invalid_credentials')
  t.same(a, b)
  t.same(a, c)
  t.notOk(wrong.headers['www-authenticate'], 'a failed sign-in is not a bearer challenge')
  t.same(Object.keys(wrong.headers).sort(), Object.keys(unknown.headers).sort())
  const tooLong = await login(app, { email: account.email, password: 'p'.repeat(200) })
  t.same(assertProblem(t, tooLong, 401, 'invalid_credentials'), a)
})

t.test('exactly one of email and username', async t => {
  const app = await build(t)
  const both = assertProblem(t, await login(app, { email: 'a@example.com', username: 'abc', password: 'whatever it is' }), 400, 'validation_failed')
  t.match(both.detail, /exactly one/)
  assertProblem(t, await login(app, { password: 'whatever it is' }), 400, 'validation_failed')
  assertProblem(t, await login(app, { email: 'a@example.com' }), 400, 'validation_failed')
  assertProblem(t, await login(app, { email: 'a@example.com', password: 12345678 }), 400, 'validation_failed')
  assertProblem(t, await login(app, { email: 'a@example.com', password: 'x', extra: 1 }), 400, 'validation_failed')
})

t.test('per-account limit: locks after the failures, even for the right password, until the window passes', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock, env: { RATE_LIMIT_LOGIN_ACCOUNT: '3' } })
  const { body: account } = await register(app, newAccount({ username: 'locked_user' }))
  for (let i = 0; i < 3; i++) assertProblem(t, await login(app, { email: account.email, password: 'wrong password' }), 401, 'invalid_credentials')

  const locked = await login(app, { email: account.email, password: account.password })
  const body = assertProblem(t, locked, 429, 'too_many_requests')
  t.equal(locked.headers['retry-after'], '900')
  t.equal(locked.headers['ratelimit-limit'], '3')
  t.equal(locked.headers['ratelimit-remaining'], '0')
  t.equal(locked.headers['ratelimit-reset'], '900')
  // the same account by its username shares the count
  assertProblem(t, await login(app, { username: 'LOCKED_USER', password: account.password }), 429, 'too_many_requests')

  // an unknown account locks the same way, with the same answer
  for (let i = 0; i < 3; i++) await login(app, { email: 'ghost@example.com', password: 'wrong password' })
  const ghost = await login(app, { email: 'ghost@example.com', password: 'wrong password' })
  t.same(assertProblem(t, ghost, 429, 'too_many_requests'), body)
  t.same(Object.keys(ghost.headers).sort(), Object.keys(locked.headers).sort())
  t.equal(ghost.headers['retry-after'], locked.headers['retry-after'])

  clock.advance(10 * 60_000)
  const later = await login(app, { email: account.email, password: account.password })
  t.equal(later.statusCode, 429)
  t.equal(later.headers['retry-after'], '300', 'the window counts from the first failure')
  clock.advance(5 * 60_000)
  t.equal((await login(app, { email: account.email, password: account.password })).statusCode, 200, 'open again')
})

t.test('a success before the lock resets the count', async t => {
  const app = await build(t, { env: { RATE_LIMIT_LOGIN_ACCOUNT: '3' } })
  const { body: account } = await register(app)
  for (let i = 0; i < 2; i++) await login(app, { email: account.email, password: 'wrong password' })
  t.equal((await login(app, { email: account.email, password: account.password })).statusCode, 200)
  for (let i = 0; i < 2; i++) assertProblem(t, await login(app, { email: account.email, password: 'wrong password' }), 401, 'invalid_credentials')
  t.equal((await login(app, { email: account.email, password: account.password })).statusCode, 200)
})

t.test('parallel attempts never exceed the per-account limit', async t => {
  const app = await build(t, { env: { RATE_LIMIT_LOGIN_ACCOUNT: '4' } })
  const { body: account } = await register(app)
  const results = await Promise.all(Array.from({ length: 10 }, () => login(app, { email: account.email, password: 'wrong password' })))
  const codes = results.map(r => r.statusCode)
  t.equal(codes.filter(c => c === 401).length, 4, 'exactly the limit was checked')
  t.equal(codes.filter(c => c === 429).length, 6)
})

t.test('per-IP limit on /login, apart from /refresh', async t => {
  const app = await build(t, { env: { RATE_LIMIT_LOGIN_IP: '2' } })
  const attempt = () => login(app, { email: 'ip-limit@example.com', password: 'wrong password' })
  t.equal((await attempt()).statusCode, 401)
  const second = await attempt()
  t.equal(second.statusCode, 401)
  t.equal(second.headers['ratelimit-limit'], '2')
  t.equal(second.headers['ratelimit-remaining'], '0')
  const third = await attempt()
  assertProblem(t, third, 429, 'too_many_requests')
  t.ok(Number(third.headers['retry-after']) > 0)
  t.ok(third.headers['ratelimit-reset'])
  // another address is not affected, and neither is /refresh
  const other = await app.inject({ method: 'POST', url: '/login', remoteAddress: '10.0.0.9', payload: { email: 'ip-limit@example.com', password: 'wrong password' } })
  t.equal(other.statusCode, 401)
  assertProblem(t, await app.inject({ method: 'POST', url: '/refresh', payload: { refreshToken: 'x'.repeat(43) } }), 401, 'invalid_token')
})

t.test('the per-IP window opens again once its minute has passed (fake time)', async t => {
  // the limiter reads Date.now(): move it instead of sleeping
  mock.timers.enable({ apis: ['Date'], now: Date.now() })
  t.teardown(() => mock.timers.reset())
  const app = await build(t, { env: { RATE_LIMIT_LOGIN_IP: '2' } })
  const attempt = () => login(app, { email: 'window@example.com', password: 'wrong password' })
  await attempt()
  await attempt()
  assertProblem(t, await attempt(), 429, 'too_many_requests')
  mock.timers.tick(59_000)
  assertProblem(t, await attempt(), 429, 'too_many_requests')
  mock.timers.tick(1_001)
  t.equal((await attempt()).statusCode, 401, 'a new window: the attempt is checked again')
})

t.test('X-Forwarded-For cannot dodge the limit unless TRUST_PROXY is set', async t => {
  const untrusted = await build(t, { env: { RATE_LIMIT_LOGIN_IP: '1' } })
  const hit = (app: TestApp, ip: string) => app.inject({ method: 'POST', url: '/login', headers: { 'x-forwarded-for': ip }, payload: { email: 'xff@example.com', password: 'wrong password' } })
  t.equal((await hit(untrusted, '1.1.1.1')).statusCode, 401)
  t.equal((await hit(untrusted, '2.2.2.2')).statusCode, 429, 'spoofed header ignored')

  const trusted = await build(t, { env: { RATE_LIMIT_LOGIN_IP: '1', TRUST_PROXY: '127.0.0.1' } })
  t.equal((await hit(trusted, '1.1.1.1')).statusCode, 401)
  t.equal((await hit(trusted, '2.2.2.2')).statusCode, 401, 'a trusted proxy names the client')
  t.equal((await hit(trusted, '1.1.1.1')).statusCode, 429)
})
