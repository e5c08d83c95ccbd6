import { createPrivateKey, sign as edSign } from 'node:crypto'
import { DrizzleQueryError, sql } from 'drizzle-orm'
import t from 'tap'
import type { buildApp as BuildApp } from '../src/app.js'
import { assertProblem, stub, bearer, build, newAccount, register, rows, testConfig, testDatabase, testKey, type TokenBody } from './helper.js'

t.test('security headers for a JSON API, no banner', async t => {
  const app = await build(t)
  for (const [method, url] of [['GET', '/health'], ['GET', '/me'], ['POST', '/login'], ['GET', '/nope']] as const) {
    const res = await app.inject({ method, url, ...(method === 'POST' ? { payload: {} } : {}) })
    t.equal(res.headers['content-security-policy'], "default-src 'none';frame-ancestors 'none'", url)
    t.equal(res.headers['x-content-type-options'], 'nosniff', url)
    t.equal(res.headers['x-frame-options'], 'DENY', url)
    t.match(String(res.headers['strict-transport-security']), /max-age=\d+/, url)
    t.equal(res.headers['cache-control'], 'no-store', url)
    t.notOk(res.headers['x-powered-by'], url)
    t.notOk(res.headers.server, url)
    t.notOk(res.headers['x-dns-prefetch-control'], `${url}: document headers are for the HTML pages`)
  }
})

t.test('the HTML pages get helmet\'s document headers and their own policy', async t => {
  const app = await build(t)
  for (const url of ['/docs/', '/demo', '/reset-password']) {
    const res = await app.inject({ url })
    t.equal(res.statusCode, 200, url)
    t.match(res.headers['content-type'], /text\/html/, url)
    t.equal(res.headers['referrer-policy'], 'no-referrer', url)
    t.equal(res.headers['x-dns-prefetch-control'], 'off', url)
    t.equal(res.headers['cross-origin-opener-policy'], 'same-origin', url)
    t.equal(res.headers['x-frame-options'], 'SAMEORIGIN', url)
    t.match(String(res.headers['content-security-policy']), /default-src 'self'/, `${url}: the page's own policy`)
  }
})

t.test('no password, hash or token in any log line, at any level, errors included', async t => {
  const app = await build(t, { env: { LOG_LEVEL: 'trace' } })
  const account = newAccount()
  const { tokens } = await register(app, account)
  const login = (await app.inject({ method: 'POST', url: '/login', payload: { email: account.email, password: account.password } })).json() as TokenBody
  await app.inject({ method: 'POST', url: '/login', payload: { email: account.email, password: `${account.password}!` } })
  const next = (await app.inject({ method: 'POST', url: '/refresh', payload: { refreshToken: login.refreshToken } })).json() as TokenBody
  await app.inject({ url: '/me', headers: bearer(next.accessToken) })
  await app.inject({ method: 'POST', url: '/register', headers: { 'x-auth-mode': 'cookie' }, payload: newAccount() })
  await app.inject({ method: 'POST', url: '/logout', headers: { ...bearer(next.accessToken), cookie: `__Host-refresh=${next.refreshToken}` }, payload: { refreshToken: next.refreshToken } })
  const [{ password_hash: hash }] = await rows<{ password_hash: string }>(sql`select password_hash from users where email = ${account.email}`) as [{ password_hash: string }]

  // a failed query carries its parameters (the hash among them) in its message: it must not reach the log
  const transaction = stub(t, app.db, 'transaction', (async () => {
    throw new DrizzleQueryError('insert into "users" ("id", "email", "password_hash") values ($1, $2, $3)', ['id', account.email, hash],
      Object.assign(new Error('deadlock detected'), { code: '40P01' }))
  }) as unknown as typeof app.db.transaction)
  const failed = await app.inject({ method: 'POST', url: '/register', payload: newAccount({ password: account.password.toUpperCase() }) })
  transaction.restore()
  assertProblem(t, failed, 500, 'internal_error')
  t.notMatch(failed.body, /insert|deadlock|argon2/)

  const text = app.logs.join('')
  t.ok(text.includes('deadlock detected'), 'the failure itself is logged')
  for (const secret of [account.password, account.password.toUpperCase(), hash, tokens.refreshToken, tokens.accessToken, login.refreshToken, next.refreshToken, next.accessToken]) {
    t.notOk(text.includes(secret), `not logged: ${secret.slice(0, 12)}…`)
  }
})

t.test('more token attacks: nbf in the future, a deleted user, an access token as a refresh token', async t => {
  const app = await build(t)
  const { tokens } = await register(app)
  const [h, p] = tokens.accessToken.split('.') as [string, string]
  const payload = JSON.parse(Buffer.from(p, 'base64url').toString())
  const forge = (claims: object) => {
    const input = `${h}.${Buffer.from(JSON.stringify({ ...payload, ...claims })).toString('base64url')}`
    return `${input}.${edSign(null, Buffer.from(input), createPrivateKey(testKey().privatePem)).toString('base64url')}`
  }
  const nbf = await app.inject({ url: '/me', headers: bearer(forge({ nbf: Math.floor(Date.now() / 1000) + 120 })) })
  assertProblem(t, nbf, 401, 'invalid_token')
  t.equal(nbf.headers['www-authenticate'], 'Bearer realm="api", error="invalid_token"')
  assertProblem(t, await app.inject({ method: 'POST', url: '/refresh', payload: { refreshToken: tokens.accessToken.slice(0, 43) } }), 401, 'invalid_token')

  const gone = await register(app)
  await (await testDatabase()).db.execute(sql`delete from users where id = ${gone.tokens.user.id}`)
  const deleted = await app.inject({ url: '/me', headers: bearer(gone.tokens.accessToken) })
  assertProblem(t, deleted, 401, 'invalid_token')
  t.equal(deleted.headers['www-authenticate'], 'Bearer realm="api", error="invalid_token"')
  assertProblem(t, await app.inject({ method: 'POST', url: '/refresh', payload: { refreshToken: gone.tokens.refreshToken } }), 401, 'invalid_token')
  const again = await app.inject({ method: 'POST', url: '/register', payload: gone.body })
  t.equal(again.statusCode, 201, 'the email can register again')
})

t.test('emails: normalisation is idempotent, and spellings that normalise alike are one account', async t => {
  const app = await build(t)
  const account = newAccount()
  await register(app, account)
  const variants = [account.email.toUpperCase(), `  ${account.email}\t`, account.email.replace(/^./, c => c.toUpperCase()), ` ${account.email.toUpperCase()} `]
  for (const email of variants) {
    t.equal((await app.inject({ method: 'POST', url: '/login', payload: { email, password: account.password } })).statusCode, 200, `sign in as ${JSON.stringify(email)}`)
    assertProblem(t, await app.inject({ method: 'POST', url: '/register', payload: { ...account, email } }), 409, 'email_taken')
  }
  const [{ n }] = await rows<{ n: number }>(sql`select count(*)::int as n from users where lower(email) = ${account.email}`) as [{ n: number }]
  t.equal(n, 1)
})

t.test('passwords: NFKC equivalents sign in; over-long ones are refused without hashing', async t => {
  let hashes = 0
  let verifies = 0
  const argon2 = await import('@node-rs/argon2')
  const { buildApp } = await t.mockImport<{ buildApp: typeof BuildApp }>('../src/app.js', {
    '@node-rs/argon2': {
      ...argon2,
      hash: (...args: Parameters<typeof argon2.hash>) => { hashes++; return argon2.hash(...args) },
      verify: (...args: Parameters<typeof argon2.verify>) => { verifies++; return argon2.verify(...args) },
    },
  })
  const app = await buildApp({ config: testConfig(), database: await testDatabase(), signingKey: testKey() })
  t.teardown(() => app.close())
  await app.ready()
  const pairs = [['ＣＯＲＲＥＣＴ ＨＯＲＳＥ ＢＡＴＴＥＲＹ', 'CORRECT HORSE BATTERY'], ['ﬁﬂ office workflow²³', 'fifl office workflow23'], ['\u212B ångström unit sign', '\u00C5 ångström unit sign']]
  for (const [stored, typed] of pairs) {
    const account = newAccount({ password: stored })
    t.equal((await app.inject({ method: 'POST', url: '/register', payload: account })).statusCode, 201)
    t.equal((await app.inject({ method: 'POST', url: '/login', payload: { email: account.email, password: typed } })).statusCode, 200, `${stored} = ${typed}`)
  }
  hashes = 0
  verifies = 0
  assertProblem(t, await app.inject({ method: 'POST', url: '/register', payload: newAccount({ password: 'p'.repeat(129) }) }), 400, 'password_too_long')
  assertProblem(t, await app.inject({ method: 'POST', url: '/register', payload: newAccount({ password: '😀'.repeat(129) }) }), 400, 'password_too_long')
  assertProblem(t, await app.inject({ method: 'POST', url: '/register', payload: newAccount({ password: 'correct horse' }) }), 400, 'password_too_short')
  assertProblem(t, await app.inject({ method: 'POST', url: '/login', payload: { email: 'someone@example.com', password: 'p'.repeat(129) } }), 401, 'invalid_credentials')
  t.equal(hashes, 0, 'no hash for a refused password')
  t.equal(verifies, 0, 'no verification for an impossible password')
  t.equal((await app.inject({ method: 'POST', url: '/register', payload: newAccount({ password: '😀'.repeat(128) }) })).statusCode, 201, '128 code points (256 UTF-16 units) are fine')
  t.equal(hashes, 1)
})
