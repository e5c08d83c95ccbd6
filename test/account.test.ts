import { sql } from 'drizzle-orm'
import t from 'tap'
import { assertProblem, claims, build, call, login, me, newAccount, refresh, register, rows, signIn, type TokenBody } from './helper.js'

t.test('PATCH /me changes name and username by the registration rules', async t => {
  const app = await build(t)
  const { tokens } = await register(app, newAccount({ username: 'before_name', name: 'Before' }))
  const other = await register(app, newAccount({ username: 'Taken.Name' }))

  const res = await call(app, 'PATCH', '/me', tokens.accessToken, { name: '  Ada King  ', username: 'Ada_King' })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['cache-control'], 'no-store')
  t.same(res.json(), { ...tokens.user, name: 'Ada King', username: 'Ada_King', role: 'user', emailVerified: false })
  t.same((await me(app, tokens.accessToken)).json(), { ...res.json(), mfa: { totp: false, recoveryCodesLeft: 0, passkeys: 0 } }, '/me shows the change')
  t.equal((await app.inject({ method: 'POST', url: '/login', payload: { username: 'ada_king', password: 'wrong password' } })).statusCode, 401, 'the new username signs in (case-insensitive)')

  t.same((await call(app, 'PATCH', '/me', tokens.accessToken, { name: 'Only the name' })).json().username, 'Ada_King', 'fields not sent stay')
  t.same((await call(app, 'PATCH', '/me', tokens.accessToken, {})).json().name, 'Only the name', 'an empty patch changes nothing')

  const taken = await call(app, 'PATCH', '/me', tokens.accessToken, { username: 'taken.NAME', name: 'Lost?' })
  assertProblem(t, taken, 409, 'username_taken')
  t.equal((await me(app, tokens.accessToken)).json().name, 'Only the name', 'a refused change changes nothing')
  t.equal(other.tokens.user.username, 'Taken.Name')

  for (const bad of [{ username: 'no spaces allowed' }, { username: 'ab' }, { name: 'x'.repeat(101) }, { email: 'new@example.com' }, { role: 'admin' }, { name: 42 }, { username: 7 }]) {
    assertProblem(t, await call(app, 'PATCH', '/me', tokens.accessToken, bad), 400, 'validation_failed')
  }
  const [row] = await rows<{ role: string, email: string }>(sql`select role, email from users where id = ${tokens.user.id}`)
  t.same(row, { role: 'user', email: tokens.user.email }, 'role and email cannot be patched')

  const cleared = await call(app, 'PATCH', '/me', tokens.accessToken, { username: null, name: '' })
  t.match(cleared.json(), { username: null, name: null }, 'null (or an empty name) removes them')
  t.match(app.logs.join(''), new RegExp(`"audit":"profile_updated".*"userId":"${tokens.user.id}"`))
})

t.test('POST /me/password: new password, this session stays, every other one ends', async t => {
  const app = await build(t)
  const account = newAccount()
  const here = (await register(app, account)).tokens
  const elsewhere = await signIn(app, account)
  const newPassword = `${account.password} but newer`

  const res = await call(app, 'POST', '/me/password', here.accessToken, { currentPassword: account.password, newPassword })
  t.equal(res.statusCode, 204)
  t.equal(res.body, '')
  t.equal((await me(app, here.accessToken)).statusCode, 200, 'this session stays signed in')
  t.equal((await refresh(app, here.refreshToken)).statusCode, 200, 'and can refresh')
  assertProblem(t, await me(app, elsewhere.accessToken), 401, 'session_revoked')
  assertProblem(t, await refresh(app, elsewhere.refreshToken), 401, 'session_revoked')
  assertProblem(t, await login(app, { email: account.email, password: account.password }), 401, 'invalid_credentials')
  t.equal((await login(app, { email: account.email, password: newPassword })).statusCode, 200)
  const [row] = await rows<{ password_hash: string }>(sql`select password_hash from users where id = ${here.user.id}`)
  t.match(row!.password_hash, /^\$argon2id\$/)
  const log = app.logs.join('')
  t.match(log, new RegExp(`"audit":"password_changed".*"userId":"${here.user.id}".*"otherSessionsEnded":1`))
  t.notOk(log.includes(newPassword) || log.includes(account.password), 'no password in the log')
})

t.test('POST /me/password: wrong current password is 403, a weak new one 400, and neither changes anything', async t => {
  const app = await build(t)
  const account = newAccount()
  const { tokens } = await register(app, account)
  const other = await signIn(app, account)
  const wrong = await call(app, 'POST', '/me/password', tokens.accessToken, { currentPassword: 'not the password at all', newPassword: 'a perfectly fine new passphrase' })
  const body = assertProblem(t, wrong, 403, 'current_password_incorrect')
  t.same(body.errors, [{ path: '/currentPassword', message: 'is not correct' }])
  t.equal(wrong.headers['www-authenticate'], undefined, 'not an authentication failure: the client keeps its tokens')

  const cases: [object, string, string][] = [
    [{ newPassword: 'short' }, 'password_too_short', '/newPassword'],
    [{ newPassword: 'x'.repeat(129) }, 'password_too_long', '/newPassword'],
    [{ newPassword: 'PasswordPassword' }, 'password_too_common', '/newPassword'],
  ]
  for (const [change, code, path] of cases) {
    const res = await call(app, 'POST', '/me/password', tokens.accessToken, { currentPassword: account.password, ...change })
    t.equal(assertProblem(t, res, 400, code).errors[0].path, path)
  }
  for (const bad of [{ currentPassword: account.password }, { newPassword: 'a perfectly fine new passphrase' }, { currentPassword: account.password, newPassword: 1234567890123456 }, { currentPassword: account.password, newPassword: 'a perfectly fine new passphrase', extra: true }]) {
    assertProblem(t, await call(app, 'POST', '/me/password', tokens.accessToken, bad), 400, 'validation_failed')
  }
  t.equal((await login(app, { email: account.email, password: account.password })).statusCode, 200, 'the password is unchanged')
  t.equal((await me(app, other.accessToken)).statusCode, 200, 'no session ended')
})

t.test('wrong current passwords count toward the per-account limit; once locked, 429 before any check', async t => {
  const app = await build(t, { env: { RATE_LIMIT_LOGIN_ACCOUNT: '3' } })
  const account = newAccount()
  const { tokens } = await register(app, account)
  const change = (currentPassword: string) => call(app, 'POST', '/me/password', tokens.accessToken, { currentPassword, newPassword: 'a perfectly fine new passphrase' })

  assertProblem(t, await login(app, { email: account.email, password: 'one wrong sign-in' }), 401, 'invalid_credentials')
  assertProblem(t, await change('wrong current one'), 403, 'current_password_incorrect')
  assertProblem(t, await call(app, 'DELETE', '/me', tokens.accessToken, { currentPassword: 'wrong current two' }), 403, 'current_password_incorrect')

  const locked = await change(account.password)
  assertProblem(t, locked, 429, 'too_many_requests')
  t.ok(Number(locked.headers['retry-after']) > 0)
  assertProblem(t, await call(app, 'DELETE', '/me', tokens.accessToken, { currentPassword: account.password }), 429, 'too_many_requests')
  assertProblem(t, await login(app, { email: account.email, password: account.password }), 429, 'too_many_requests') // sign-in shares the count
  t.equal((await me(app, tokens.accessToken)).statusCode, 200, 'the account still exists and is signed in')
  t.equal((await rows(sql`select 1 from users where id = ${tokens.user.id}`)).length, 1)
  t.match(app.logs.join(''), /"audit":"password_change_failed".*"code":"current_password_incorrect"/)
})

t.test('a right current password clears the count', async t => {
  const app = await build(t, { env: { RATE_LIMIT_LOGIN_ACCOUNT: '2' } })
  const account = newAccount()
  const { tokens } = await register(app, account)
  const newPassword = 'a perfectly fine new passphrase'
  assertProblem(t, await call(app, 'POST', '/me/password', tokens.accessToken, { currentPassword: 'wrong', newPassword }), 403, 'current_password_incorrect')
  t.equal((await call(app, 'POST', '/me/password', tokens.accessToken, { currentPassword: account.password, newPassword })).statusCode, 204)
  assertProblem(t, await login(app, { email: account.email, password: 'wrong again' }), 401, 'invalid_credentials') // not locked: the count started over
})

t.test('DELETE /me: the user, sessions and tokens go; every token is refused; the email can register again', async t => {
  const app = await build(t)
  const account = newAccount({ username: 'leaving_user' })
  const { tokens } = await register(app, account)
  const other = await signIn(app, account)
  const spent = tokens.refreshToken
  const current = (await refresh(app, spent)).json() as TokenBody

  assertProblem(t, await call(app, 'DELETE', '/me', current.accessToken, { currentPassword: 'wrong password' }), 403, 'current_password_incorrect')
  assertProblem(t, await call(app, 'DELETE', '/me', current.accessToken, {}), 400, 'validation_failed')
  t.equal((await me(app, current.accessToken)).statusCode, 200, 'a refused deletion deletes nothing')

  const res = await call(app, 'DELETE', '/me', current.accessToken, { currentPassword: account.password })
  t.equal(res.statusCode, 204)
  t.equal(res.body, '')
  for (const token of [tokens.accessToken, current.accessToken, other.accessToken]) assertProblem(t, await me(app, token), 401, 'invalid_token')
  for (const token of [spent, current.refreshToken, other.refreshToken]) assertProblem(t, await refresh(app, token), 401, 'invalid_token')
  assertProblem(t, await login(app, { email: account.email, password: account.password }), 401, 'invalid_credentials')
  const left = await rows<{ n: number }>(sql`select
    (select count(*) from users where id = ${tokens.user.id})
    + (select count(*) from sessions where user_id = ${tokens.user.id}) as n`)
  t.equal(Number(left[0]!.n), 0, 'no user or session row is left')
  t.match(app.logs.join(''), new RegExp(`"audit":"account_deleted".*"userId":"${tokens.user.id}"`))

  const again = await app.inject({ method: 'POST', url: '/register', payload: account })
  t.equal(again.statusCode, 201, 'the email and username are free again')
  t.not(again.json().user.id, tokens.user.id)
})

t.test('a revoked session\'s access token is refused on every protected route, and changes nothing', async t => {
  const app = await build(t)
  const account = newAccount()
  const { tokens } = await register(app, account)
  const keeper = await signIn(app, account)
  t.equal((await call(app, 'DELETE', `/sessions/${claims(tokens.accessToken).sid}`, keeper.accessToken)).statusCode, 204)

  const routes: [('GET' | 'PATCH' | 'POST' | 'DELETE'), string, object | undefined][] = [
    ['GET', '/me', undefined],
    ['PATCH', '/me', { name: 'Hijacked' }],
    ['POST', '/me/password', { currentPassword: account.password, newPassword: 'an attacker chosen passphrase' }],
    ['DELETE', '/me', { currentPassword: account.password }],
    ['GET', '/sessions', undefined],
    ['DELETE', `/sessions/${claims(keeper.accessToken).sid}`, undefined],
    ['GET', '/admin/users', undefined],
    ['POST', `/admin/users/${tokens.user.id}/revoke-sessions`, undefined],
    ['POST', '/email/verify/resend', undefined],
  ]
  for (const [method, url, payload] of routes) {
    const res = await call(app, method, url, tokens.accessToken, payload)
    assertProblem(t, res, 401, 'session_revoked')
    t.equal(res.headers['www-authenticate'], 'Bearer realm="api", error="invalid_token"', `${method} ${url}`)
    const none = await app.inject({ method, url, ...(payload ? { payload } : {}) })
    assertProblem(t, none, 401, 'invalid_token')
    t.equal(none.headers['www-authenticate'], 'Bearer realm="api"', `${method} ${url} without a token`)
  }
  const profile = (await me(app, keeper.accessToken)).json()
  t.equal(profile.name, null, 'nothing changed')
  t.equal((await login(app, { email: account.email, password: account.password })).statusCode, 200, 'the password did not change')
  t.equal((await me(app, keeper.accessToken)).statusCode, 200, 'the other session is alive')
})

t.test('deleting an account while its refresh tokens are being used: no 5xx, nothing left behind', async t => {
  const app = await build(t)
  for (let round = 0; round < 5; round++) {
    const account = newAccount()
    const { tokens } = await register(app, account)
    const sessions = [tokens, ...await Promise.all(Array.from({ length: 3 }, () => signIn(app, account)))]
    const [deletion, ...refreshes] = await Promise.all([
      call(app, 'DELETE', '/me', tokens.accessToken, { currentPassword: account.password }),
      ...sessions.flatMap(s => [refresh(app, s.refreshToken), refresh(app, s.refreshToken)]),
    ])
    t.equal(deletion!.statusCode, 204, `round ${round}: deleted`)
    for (const r of refreshes) t.ok(r.statusCode === 200 || r.statusCode === 401, `round ${round}: refresh ${r.statusCode}`)
    const left = await rows<{ n: number }>(sql`select count(*)::int as n from sessions where user_id = ${tokens.user.id}`)
    t.equal(Number(left[0]!.n), 0, `round ${round}: no session left`)
    for (const r of refreshes.filter(r => r.statusCode === 200)) {
      assertProblem(t, await me(app, (r.json() as TokenBody).accessToken), 401, 'invalid_token')
      assertProblem(t, await refresh(app, (r.json() as TokenBody).refreshToken), 401, 'invalid_token')
    }
  }
})
