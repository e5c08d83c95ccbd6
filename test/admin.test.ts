import { sql } from 'drizzle-orm'
import t from 'tap'
import { assertProblem, bearer, build, claims, newAccount, register, rows, type TestApp, type TokenBody } from './helper.js'

const get = (app: TestApp, url: string, token: string) => app.inject({ url, headers: bearer(token) })
const revokeAll = (app: TestApp, id: string, token: string) => app.inject({ method: 'POST', url: `/admin/users/${id}/revoke-sessions`, headers: bearer(token) })
const refresh = async (app: TestApp, refreshToken: string) => (await app.inject({ method: 'POST', url: '/refresh', payload: { refreshToken } })).json() as TokenBody

async function admin (app: TestApp) {
  const { tokens } = await register(app)
  await rows(sql`update users set role = 'admin' where id = ${tokens.user.id}`)
  return refresh(app, tokens.refreshToken)
}

t.test('roles: user by default, in /me and the access token; the token response\'s user is unchanged', async t => {
  const app = await build(t)
  const { tokens } = await register(app)
  t.equal(claims(tokens.accessToken).role, 'user')
  t.notOk('role' in tokens.user)
  t.equal((await get(app, '/me', tokens.accessToken)).json().role, 'user')
  const promoted = await admin(app)
  t.equal(claims(promoted.accessToken).role, 'admin', 'the next token carries the new role')
  t.equal((await get(app, '/me', promoted.accessToken)).json().role, 'admin')
  t.notOk('role' in promoted.user)
})

t.test('admin routes: 403 forbidden for users; a demotion takes effect at once', async t => {
  const app = await build(t)
  const user = (await register(app)).tokens
  const boss = await admin(app)
  const attempts = [
    await get(app, '/admin/users', user.accessToken),
    await revokeAll(app, boss.user.id, user.accessToken),
    await app.inject({ method: 'DELETE', url: `/admin/users/${boss.user.id}/mfa`, headers: bearer(user.accessToken) }),
    await app.inject({ method: 'POST', url: `/admin/users/${boss.user.id}/suspend`, headers: bearer(user.accessToken), payload: {} }),
    await app.inject({ method: 'DELETE', url: `/admin/users/${boss.user.id}/suspend`, headers: bearer(user.accessToken) }),
    await get(app, '/admin/audit-events', user.accessToken),
  ]
  for (const res of attempts) {
    assertProblem(t, res, 403, 'forbidden')
    t.equal(res.headers['www-authenticate'], undefined)
  }
  t.equal((await get(app, '/me', boss.accessToken)).statusCode, 200, 'the user\'s attempt ended nobody\'s session')
  t.match(app.logs.join(''), new RegExp(`"audit":"forbidden".*"userId":"${user.user.id}"`))

  t.equal((await get(app, '/admin/users', boss.accessToken)).statusCode, 200)
  await rows(sql`update users set role = 'user' where id = ${boss.user.id}`)
  assertProblem(t, await get(app, '/admin/users', boss.accessToken), 403, 'forbidden')
  t.equal(claims(boss.accessToken).role, 'admin', 'even with a token that still says admin')
})

t.test('GET /admin/users: pages by id with a cursor, filters by email prefix ignoring case', async t => {
  const app = await build(t)
  const boss = await admin(app)
  const tag = `p${Date.now().toString(36)}`
  const made: TokenBody['user'][] = []
  for (let i = 0; i < 5; i++) made.push((await register(app, newAccount({ email: `${tag}.${i}@example.com`, username: `${tag}_${i}`, name: `Person ${i}` }))).tokens.user)
  await register(app, newAccount({ email: `x${tag}@example.com` }))

  const first = await get(app, `/admin/users?limit=2&email=${tag.toUpperCase()}`, boss.accessToken)
  t.equal(first.statusCode, 200)
  t.equal(first.headers['cache-control'], 'no-store')
  const page1 = first.json()
  t.same(page1.users, made.slice(0, 2).map(u => ({ id: u.id, email: u.email, username: u.username, name: u.name, role: 'user', emailVerified: false, createdAt: u.createdAt, suspended: false, suspendedUntil: null })))
  t.equal(page1.nextCursor, made[1]!.id)
  const page2 = (await get(app, `/admin/users?limit=2&email=${tag}&cursor=${page1.nextCursor}`, boss.accessToken)).json()
  t.same(page2.users.map((u: { id: string }) => u.id), [made[2]!.id, made[3]!.id])
  const page3 = (await get(app, `/admin/users?limit=2&email=${tag}&cursor=${page2.nextCursor}`, boss.accessToken)).json()
  t.same(page3.users.map((u: { id: string }) => u.id), [made[4]!.id])
  t.equal(page3.nextCursor, null, 'null on the last page')

  const all = (await get(app, '/admin/users', boss.accessToken)).json()
  t.ok(all.users.length >= 7 && all.users.length <= 20, 'default limit 20')
  const ids = all.users.map((u: { id: string }) => u.id)
  t.same(ids, [...ids].sort(), 'ordered by id')
  t.notOk(/password|hash/i.test(JSON.stringify(all)), 'never a hash')
  t.same((await get(app, '/admin/users?email=%25', boss.accessToken)).json().users, [], 'LIKE wildcards are taken literally')
  t.same((await get(app, `/admin/users?email=${tag.slice(0, 3)}_`, boss.accessToken)).json().users, [])
  t.match(app.logs.join(''), new RegExp(`"audit":"admin_users_listed".*"userId":"${boss.user.id}"`))

  for (const query of ['limit=0', 'limit=101', 'limit=abc', 'limit=1.5', 'limit=-1', 'limit=', 'cursor=nope', 'email=', 'limit=1&limit=2', 'unknown=1']) {
    assertProblem(t, await get(app, `/admin/users?${query}`, boss.accessToken), 400, 'validation_failed')
  }
  t.equal((await get(app, '/admin/users?limit=100', boss.accessToken)).statusCode, 200)
})

t.test('POST /admin/users/{id}/revoke-sessions ends every session of that user; unknown ids are 404', async t => {
  const app = await build(t)
  const boss = await admin(app)
  const account = newAccount()
  const victim = (await register(app, account)).tokens
  const second = (await app.inject({ method: 'POST', url: '/login', payload: { email: account.email, password: account.password } })).json() as TokenBody

  const res = await revokeAll(app, victim.user.id, boss.accessToken)
  t.equal(res.statusCode, 204)
  t.equal(res.body, '')
  for (const s of [victim, second]) {
    assertProblem(t, await get(app, '/me', s.accessToken), 401, 'session_revoked')
    assertProblem(t, await app.inject({ method: 'POST', url: '/refresh', payload: { refreshToken: s.refreshToken } }), 401, 'session_revoked')
  }
  t.equal((await get(app, '/me', boss.accessToken)).statusCode, 200, 'the admin stays signed in')
  t.match(app.logs.join(''), new RegExp(`"audit":"admin_sessions_revoked".*"userId":"${boss.user.id}".*"targetUserId":"${victim.user.id}".*"sessionsEnded":2`))
  t.equal((await revokeAll(app, victim.user.id, boss.accessToken)).statusCode, 204, 'again: nothing left to end, still 204')

  for (const id of ['00000000-0000-7000-8000-000000000000', 'not-an-id', 'x'.repeat(300)]) {
    assertProblem(t, await revokeAll(app, id, boss.accessToken), 404, 'not_found')
  }
})
