import { sql } from 'drizzle-orm'
import t from 'tap'
import { assertProblem, bearer, build, newAccount, rows, type TestApp } from './helper.js'

const post = (app: TestApp, payload: unknown) => app.inject({ method: 'POST', url: '/register', payload: payload as object })

async function countUsers (email?: string) {
  const [row] = await rows<{ n: number }>(email
    ? sql`select count(*)::int as n from users where email = ${email}`
    : sql`select count(*)::int as n from users`)
  return row!.n
}

t.test('registers, signs in, and stores only an argon2id hash', async t => {
  const app = await build(t)
  const account = newAccount({ username: 'Ada.L-1', name: '  Ada Lovelace  ' })
  const res = await post(app, { ...account, email: `  ${account.email.toUpperCase()} ` })
  t.equal(res.statusCode, 201)
  t.equal(res.headers['cache-control'], 'no-store')
  t.notOk(res.headers['x-powered-by'])
  const body = res.json()
  t.same(Object.keys(body).sort(), ['accessToken', 'expiresIn', 'refreshExpiresIn', 'refreshToken', 'tokenType', 'user'])
  t.equal(body.tokenType, 'Bearer')
  t.equal(body.expiresIn, 900)
  t.equal(body.refreshExpiresIn, 43_200)
  t.match(body.refreshToken, /^[A-Za-z0-9_-]{71}$/)
  t.same(Object.keys(body.user).sort(), ['createdAt', 'email', 'id', 'name', 'username'])
  t.equal(body.user.email, account.email, 'trimmed and lower-cased')
  t.equal(body.user.username, 'Ada.L-1')
  t.equal(body.user.name, 'Ada Lovelace', 'name trimmed')
  t.ok(!Number.isNaN(Date.parse(body.user.createdAt)))

  const [{ password_hash: hash }] = await rows<{ password_hash: string }>(sql`select password_hash from users where id = ${body.user.id}`) as [{ password_hash: string }]
  t.match(hash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/)
  t.notMatch(hash, account.password)
  const sessionRows = await rows<Record<string, unknown>>(sql`select * from sessions where user_id = ${body.user.id}`)
  t.equal(sessionRows.length, 1, 'one session')
  t.same([sessionRows[0]!.aal, sessionRows[0]!.amr, sessionRows[0]!.refresh_counter], ['aal1', ['pwd'], 0], 'a password sign-in: aal1, pwd, counter 0')
  t.notOk(JSON.stringify(sessionRows).includes(body.refreshToken), 'the refresh token is not stored')

  const me = await app.inject({ url: '/me', headers: bearer(body.accessToken) })
  t.equal(me.statusCode, 200)
  t.same(me.json(), { ...body.user, role: 'user', emailVerified: false, mfa: { totp: false, recoveryCodesLeft: 0, passkeys: 0 } })

  const log = app.logs.join('')
  t.notOk(log.includes(account.password), 'no password in the log')
  t.notOk(log.includes(body.refreshToken), 'no refresh token in the log')
  t.notOk(log.includes(body.accessToken), 'no access token in the log')
})

t.test('rememberMe gives the longer idle lifetime', async t => {
  const app = await build(t)
  const res = await post(app, newAccount({ rememberMe: true }))
  t.equal(res.statusCode, 201)
  t.equal(res.json().refreshExpiresIn, 2_592_000)
})

t.test('email and username are unique ignoring case', async t => {
  const app = await build(t)
  const first = newAccount({ username: 'Grace_H' })
  t.equal((await post(app, first)).statusCode, 201)
  const before = await countUsers()
  const sameEmail = await post(app, newAccount({ email: first.email.toUpperCase() }))
  const body = assertProblem(t, sameEmail, 409, 'email_taken')
  t.type(body.detail, 'string')
  assertProblem(t, await post(app, newAccount({ username: 'grace_h' })), 409, 'username_taken')
  t.equal(await countUsers(), before, 'nothing written')
})

t.test('parallel registrations of one email: one 201, the rest 409', async t => {
  const app = await build(t)
  const account = newAccount()
  const results = await Promise.all(Array.from({ length: 20 }, () => post(app, account)))
  const codes = results.map(r => r.statusCode).sort()
  t.same(codes, [201, ...Array(19).fill(409)])
  for (const r of results.filter(r => r.statusCode === 409)) t.equal(r.json().code, 'email_taken')
  t.equal(await countUsers(account.email), 1)
})

t.test('password policy', async t => {
  const app = await build(t)
  const before = await countUsers()
  const short = assertProblem(t, await post(app, newAccount({ password: 'fourteen chars' })), 400, 'password_too_short')
  t.match(short.detail, /at least 15/)
  t.same(short.errors, [{ path: '/password', message: 'must be 15 to 128 characters' }])
  // 14 emoji are 28 UTF-16 units but 14 code points: too short
  assertProblem(t, await post(app, newAccount({ password: '😀'.repeat(14) })), 400, 'password_too_short')
  t.equal((await post(app, newAccount({ password: '😀'.repeat(15) }))).statusCode, 201, '15 code points pass')
  assertProblem(t, await post(app, newAccount({ password: 'x'.repeat(129) })), 400, 'password_too_long')
  t.equal((await post(app, newAccount({ password: 'y'.repeat(128) }))).statusCode, 201, '128 code points pass')
  // NFKC: the ligature "ﬁ" becomes "fi", so 8 ligatures count as 16 characters
  t.equal((await post(app, newAccount({ password: 'ﬁ'.repeat(8) }))).statusCode, 201)
  assertProblem(t, await post(app, newAccount({ password: 'PasswordPassword' })), 400, 'password_too_common')
  assertProblem(t, await post(app, newAccount({ password: 'QWERTYUIOP12345' })), 400, 'password_too_common')
  const local = 'someone.with.a.long.local.part'
  assertProblem(t, await post(app, { email: `${local}@example.com`, password: local.toUpperCase() }), 400, 'password_too_common')
  assertProblem(t, await post(app, newAccount({ username: 'a-long-username-here', password: 'A-LONG-USERNAME-HERE' })), 400, 'password_too_common')
  t.equal(await countUsers(), before + 3, 'only the three valid registrations were stored')
})

t.test('the minimum length follows PASSWORD_MIN_LENGTH', async t => {
  const app = await build(t, { env: { PASSWORD_MIN_LENGTH: '8' } })
  t.equal((await post(app, newAccount({ password: 'zq8!vR2#' }))).statusCode, 201)
  assertProblem(t, await post(app, newAccount({ password: 'zq8!vR2' })), 400, 'password_too_short')
})

t.test('bad input is a 400 problem and nothing is stored', async t => {
  const app = await build(t)
  const before = await countUsers()
  const cases: [string, unknown, string][] = [
    ['unknown property', { ...newAccount(), admin: true }, '/admin'],
    ['numeric password', { ...newAccount(), password: 123456789012345 }, '/password'],
    ['string rememberMe', { ...newAccount(), rememberMe: 'true' }, '/rememberMe'],
    ['missing email', { password: 'a long passphrase here' }, '/email'],
    ['missing password', { email: 'x@example.com' }, '/password'],
    ['bad email', { ...newAccount(), email: 'not-an-email' }, '/email'],
    ['email too long', { ...newAccount(), email: `${'a'.repeat(64)}@${'b'.repeat(186)}.com` }, '/email'],
    ['short username', { ...newAccount(), username: 'ab' }, '/username'],
    ['long username', { ...newAccount(), username: 'a'.repeat(33) }, '/username'],
    ['username with space', { ...newAccount(), username: 'ada lovelace' }, '/username'],
    ['name too long', { ...newAccount(), name: 'n'.repeat(101) }, '/name'],
    ['null name', { ...newAccount(), name: null }, '/name'],
    // JSON can spell half a surrogate pair, which has no UTF-8: it would be stored as U+FFFD
    ['name with a lone surrogate', { ...newAccount(), name: 'Ada \ud800' }, '/name'],
    ['array body', [newAccount()], '/'],
    ['string body', 'hello', '/'],
  ]
  for (const [label, payload, path] of cases) {
    const res = await app.inject({ method: 'POST', url: '/register', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(payload) })
    const body = assertProblem(t, res, 400, 'validation_failed')
    t.ok(body.errors?.some((e: { path: string }) => e.path === path), `${label}: error at ${path} (${JSON.stringify(body.errors)})`)
    t.type(body.detail, 'string', `${label}: a human detail`)
  }
  t.equal((await post(app, newAccount({ name: 'n'.repeat(100), username: 'u'.repeat(32) }))).statusCode, 201, 'limits themselves pass')
  t.equal(await countUsers(), before + 1)
})
