import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { request as httpRequest, Agent } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { buildApp } from '../../src/app.js'
import { generateSigningKey } from '../../src/auth/keys.js'
import { openDatabase } from '../../src/db/client.js'
import { assertProblem, bearer, claims, createServerDatabase, newAccount, testConfig, testKey, totp, type TokenBody } from '../helper.js'
import { freePort, kill, liveServer, start } from '../live-server.js'
import { tcpProxy } from '../tcp-proxy.js'

// Several processes on one database need a database server: these run in the Postgres pass of the suite.
const ADMIN = process.env.TEST_DATABASE_URL
const needsPostgres = ADMIN ? false : 'needs TEST_DATABASE_URL (several processes cannot share an embedded database)'

const post = async (url: string, path: string, body?: object, headers: Record<string, string> = {}) => {
  const res = await fetch(`${url}${path}`, { method: 'POST', headers: { ...(body ? { 'content-type': 'application/json' } : {}), ...headers }, body: body ? JSON.stringify(body) : undefined })
  return { status: res.status, body: res.status === 204 ? null : await res.json() }
}

t.test('two instances on one Postgres and one Redis behave as one service', { skip: needsPostgres }, async t => {
  const env = {
    DATABASE_URL: await createServerDatabase(ADMIN!),
    REDIS_URL: 'redis://127.0.0.1:6379',
    REDIS_KEY_PREFIX: `test:${randomBytes(4).toString('hex')}:`,
    JWT_PRIVATE_KEY: generateSigningKey().privatePem,
    // every instance shares the refresh token secret and the MFA encryption key, as the signing key
    REFRESH_TOKEN_SECRET: randomBytes(32).toString('base64'),
    MFA_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
    RATE_LIMIT_LOGIN_ACCOUNT: '3',
  }
  const a = await liveServer(t, env)
  const b = await liveServer(t, env)

  const account = newAccount()
  const signedUp = await post(a.url, '/register', account)
  t.equal(signedUp.status, 201)
  const tokens = signedUp.body as TokenBody
  const me = await fetch(`${b.url}/me`, { headers: bearer(tokens.accessToken) })
  t.equal(me.status, 200, 'a token issued by one instance works on the other')

  const race = await Promise.all(Array.from({ length: 8 }, (_, i) => post(i % 2 ? a.url : b.url, '/refresh', { refreshToken: tokens.refreshToken })))
  t.same(race.map(r => r.status), Array(8).fill(200), 'a refresh race across both instances: every racer succeeds')
  t.equal(new Set(race.map(r => (r.body as TokenBody).refreshToken)).size, 1, 'with one successor')
  const next = race[0]!.body as TokenBody
  t.equal((await post(b.url, '/refresh', { refreshToken: next.refreshToken })).status, 200)

  // a second factor enrolled through one instance is checked by the other (the secret is sealed under the shared key)
  const second = newAccount()
  const own = (await post(a.url, '/register', second)).body as TokenBody
  const { secret } = (await post(a.url, '/mfa/totp/enroll', undefined, bearer(own.accessToken))).body as { secret: string }
  t.equal((await post(b.url, '/mfa/totp/confirm', { code: totp(secret, Date.now()) }, bearer(own.accessToken))).status, 200, 'enrolled on one, confirmed on the other')
  const paused = await post(b.url, '/login', second)
  t.equal(paused.status, 403)
  // the next step's code: the confirmation spent this one
  const signedIn = await post(a.url, '/login/mfa', { mfaToken: (paused.body as { mfaToken: string }).mfaToken, code: totp(secret, Date.now() + 30_000) })
  t.equal(signedIn.status, 200, 'the second step on the other instance')
  t.equal(claims((signedIn.body as TokenBody).accessToken).aal, 'aal2')

  const wrong = { email: account.email, password: 'wrong password' }
  t.equal((await post(a.url, '/login', wrong)).status, 401)
  t.equal((await post(b.url, '/login', wrong)).status, 401)
  t.equal((await post(a.url, '/login', wrong)).status, 401)
  const locked = await post(b.url, '/login', { email: account.email, password: account.password })
  t.equal(locked.status, 429, 'the login limit counts attempts made on both')
})

t.test('Postgres away: 503 problems at once, /ready 503, and recovery without a restart', { skip: needsPostgres }, async t => {
  const url = new URL(await createServerDatabase(ADMIN!))
  const proxy = await tcpProxy(Number(url.port || 5432), url.hostname)
  t.teardown(() => proxy.close())
  url.hostname = '127.0.0.1'
  url.port = String(proxy.port)
  const database = await openDatabase({ url: url.toString(), max: 4 })
  t.teardown(() => database.close())
  await database.migrate()
  const app = await buildApp({ config: testConfig(), database, signingKey: testKey() })
  t.teardown(() => app.close())

  const account = newAccount()
  const tokens = (await app.inject({ method: 'POST', url: '/register', payload: account })).json() as TokenBody
  t.equal((await app.inject({ url: '/ready' })).statusCode, 200)

  await proxy.cut()
  const started = Date.now()
  const answers = await Promise.all([
    app.inject({ url: '/ready' }),
    app.inject({ url: '/me', headers: bearer(tokens.accessToken) }),
    app.inject({ method: 'POST', url: '/login', payload: { email: account.email, password: account.password } }),
    app.inject({ method: 'POST', url: '/refresh', payload: { refreshToken: tokens.refreshToken } }),
    app.inject({ method: 'POST', url: '/register', payload: newAccount() }),
  ])
  t.ok(Date.now() - started < 6000, `answered within the connect timeout (${Date.now() - started} ms)`)
  for (const res of answers) {
    const body = assertProblem(t, res, 503, 'service_unavailable')
    t.notMatch(JSON.stringify(body), /ECONNREFUSED|127\.0\.0\.1|postgres/i, 'no internals')
  }
  t.equal((await app.inject({ url: '/health' })).statusCode, 200, 'the process itself is alive')

  await proxy.restore()
  let ready = 0
  for (let i = 0; i < 50 && ready !== 200; i++) {
    await new Promise(resolve => setTimeout(resolve, 200))
    ready = (await app.inject({ url: '/ready' })).statusCode
  }
  t.equal(ready, 200, '/ready is 200 again')
  t.equal((await app.inject({ method: 'POST', url: '/refresh', payload: { refreshToken: tokens.refreshToken } })).statusCode, 200, 'nothing was lost: the refresh token still works')
})

t.test('SIGTERM: in-flight requests finish, idle keep-alive connections do not hold the exit', async t => {
  const server = await liveServer(t, { SHUTDOWN_TIMEOUT_SECONDS: '20' })
  // an idle keep-alive connection (the server would otherwise keep it open for 72 s)
  const agent = new Agent({ keepAlive: true })
  await new Promise<void>((resolve, reject) => {
    httpRequest(`${server.url}/health`, { agent }, res => { res.resume(); res.on('end', resolve) }).on('error', reject).end()
  })
  const count = 8
  const inflight = Array.from({ length: count }, () => post(server.url, '/register', newAccount()))
  // wait until every request has reached the server, then ask it to stop
  const arrived = () => (server.output().match(/"url":"\/register"/g) ?? []).length
  for (let i = 0; i < 200 && arrived() < count; i++) await new Promise(resolve => setTimeout(resolve, 10))
  const stopAt = Date.now()
  server.child.kill('SIGTERM')
  const results = await Promise.all(inflight)
  t.same(results.map(r => r.status), Array(count).fill(201), 'every request in flight was answered')
  t.equal(await server.exited, 0, 'exit 0')
  t.ok(Date.now() - stopAt < 8000, `exited promptly (${Date.now() - stopAt} ms)`)
  t.match(server.output(), /shutting down/)
  agent.destroy()
})

t.test('production refuses to start without MFA_ENCRYPTION_KEY, or with one of the wrong length', async t => {
  const base = {
    NODE_ENV: 'production',
    JWT_PRIVATE_KEY: generateSigningKey().privatePem,
    REFRESH_TOKEN_SECRET: randomBytes(32).toString('base64'),
    APP_URL: 'https://app.example.com',
    SMTP_URL: 'smtp://127.0.0.1:9',
    // never reached: the key is checked before anything connects
    DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none',
  }
  const cases: [string, string | undefined, RegExp][] = [
    ['missing', undefined, /MFA_ENCRYPTION_KEY must be set in production \(base64 of exactly 32 random bytes/],
    ['16 bytes', randomBytes(16).toString('base64'), /MFA_ENCRYPTION_KEY must be base64 of exactly 32 random bytes/],
    ['33 bytes', randomBytes(33).toString('base64'), /MFA_ENCRYPTION_KEY must be base64 of exactly 32 random bytes/],
  ]
  await Promise.all(cases.map(async ([name, key, message]) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'auth-data-'))
    t.teardown(() => rmSync(dataDir, { recursive: true, force: true }))
    const proc = start({ ...base, DATA_DIR: dataDir, PORT: String(await freePort()), ...(key ? { MFA_ENCRYPTION_KEY: key } : {}) })
    t.teardown(() => kill(proc.child))
    t.equal(await proc.exited, 1, `${name}: exit 1`)
    t.match(proc.output(), message, `${name}: the message names the variable`)
    t.notMatch(proc.output(), /\n\s+at /, `${name}: a message, not a stack trace`)
    t.notMatch(proc.output(), /Server listening/, `${name}: never listened`)
    if (key) t.notOk(proc.output().includes(key), `${name}: the value is not echoed`)
  }))
})
