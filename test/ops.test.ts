import { randomBytes } from 'node:crypto'
import t from 'tap'
import { generateSigningKey } from '../src/auth/keys.js'
import { assertProblem, bearer, build, newAccount, register, testKey } from './helper.js'

t.test('metrics: off by default; behind the token when enabled; latency and outcome counters', async t => {
  const off = await build(t)
  assertProblem(t, await off.inject({ url: '/metrics' }), 404, 'not_found')

  const token = randomBytes(16).toString('hex')
  const app = await build(t, { env: { METRICS_ENABLED: 'true', METRICS_TOKEN: token } })
  const denied = await app.inject({ url: '/metrics' })
  assertProblem(t, denied, 401, 'invalid_token')
  assertProblem(t, await app.inject({ url: '/metrics', headers: bearer('x'.repeat(32)) }), 401, 'invalid_token')

  const { body } = await register(app)
  await app.inject({ method: 'POST', url: '/login', payload: { email: body.email, password: 'not the password' } })
  await app.inject({ method: 'POST', url: '/login', payload: { email: body.email, password: body.password } })
  await app.inject({ method: 'POST', url: '/refresh', payload: { refreshToken: 'A'.repeat(43) } })
  const res = await app.inject({ url: '/metrics', headers: bearer(token) })
  t.equal(res.statusCode, 200)
  t.match(res.body, /auth_login_total\{outcome="invalid_credentials"\} 1/)
  t.match(res.body, /auth_login_total\{outcome="success"\} 1/)
  t.match(res.body, /auth_refresh_total\{outcome="invalid_token"\} 1/)
  t.match(res.body, /http_request_duration_seconds_bucket\{.*route="\/login"/)
  t.notMatch(res.body, new RegExp(body.password))
})

t.test('key rotation: previous public keys still verify and are published, never sign', async t => {
  const oldKey = testKey()
  const newKey = generateSigningKey()
  const before = await build(t, { signingKey: oldKey })
  const { tokens } = await register(before)

  const rotated = await build(t, { signingKey: newKey, env: { JWT_PREVIOUS_PUBLIC_KEYS: oldKey.publicPem } })
  t.equal((await rotated.inject({ url: '/me', headers: bearer(tokens.accessToken) })).statusCode, 200, 'an old token still works')
  const jwks = (await rotated.inject({ url: '/.well-known/jwks.json' })).json()
  t.same(jwks.keys.map((k: { kid: string }) => k.kid), [newKey.kid, oldKey.kid])
  const fresh = (await rotated.inject({ method: 'POST', url: '/refresh', payload: { refreshToken: tokens.refreshToken } })).json()
  const header = JSON.parse(Buffer.from(fresh.accessToken.split('.')[0], 'base64url').toString())
  t.equal(header.kid, newKey.kid, 'new tokens are signed with the new key')
  t.equal((await rotated.inject({ url: '/me', headers: bearer(fresh.accessToken) })).statusCode, 200)

  const retired = await build(t, { signingKey: newKey })
  const refused = await retired.inject({ url: '/me', headers: bearer(tokens.accessToken) })
  assertProblem(t, refused, 401, 'invalid_token')
  t.equal(refused.headers['www-authenticate'], 'Bearer realm="api", error="invalid_token"')
  t.same((await retired.inject({ url: '/.well-known/jwks.json' })).json().keys.map((k: { kid: string }) => k.kid), [newKey.kid])
})

t.test('audit lines for security events carry the user and the address, never a secret', async t => {
  const app = await build(t, { env: { RATE_LIMIT_LOGIN_IP: '2' } })
  const account = newAccount()
  const { tokens } = await register(app, account)
  await app.inject({ method: 'POST', url: '/login', payload: { email: account.email, password: account.password } })
  await app.inject({ method: 'POST', url: '/login', payload: { email: account.email, password: 'wrong password!' } })
  await app.inject({ method: 'POST', url: '/login', payload: { email: account.email, password: 'wrong password!' } })
  await app.inject({ method: 'POST', url: '/logout', payload: { refreshToken: tokens.refreshToken }, headers: bearer(tokens.accessToken) })
  const lines = app.logs.map(l => JSON.parse(l)).filter(l => l.audit)
  const events = lines.map(l => l.audit)
  for (const e of ['register', 'login_success', 'login_failure', 'rate_limited', 'logout']) t.ok(events.includes(e), `${e} is audited`)
  t.ok(lines.every(l => l.ip === '127.0.0.1' && l.reqId), 'with the address and the request id')
  t.equal(lines.find(l => l.audit === 'register').userId, tokens.user.id)
  const text = app.logs.join('')
  for (const secret of [account.password, tokens.refreshToken, tokens.accessToken]) t.notOk(text.includes(secret))
})
