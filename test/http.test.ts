import t from 'tap'
import { assertProblem, stub, build, newAccount, rows } from './helper.js'
import { sql } from 'drizzle-orm'

t.test('bodies must be JSON, well formed and at most 16 KiB', async t => {
  const app = await build(t)
  const [{ n: before }] = await rows<{ n: number }>(sql`select count(*)::int as n from users`) as [{ n: number }]
  const account = JSON.stringify(newAccount())

  const text = await app.inject({ method: 'POST', url: '/register', headers: { 'content-type': 'text/plain' }, payload: account })
  assertProblem(t, text, 415, 'unsupported_media_type')
  const form = await app.inject({ method: 'POST', url: '/login', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'email=a&password=b' })
  assertProblem(t, form, 415, 'unsupported_media_type')

  const malformed = await app.inject({ method: 'POST', url: '/register', headers: { 'content-type': 'application/json' }, payload: '{"email": "a@example.com",' })
  const body = assertProblem(t, malformed, 400, 'validation_failed')
  t.match(body.detail, /not valid JSON/)
  assertProblem(t, await app.inject({ method: 'POST', url: '/register', headers: { 'content-type': 'application/json' }, payload: '' }), 400, 'validation_failed')
  assertProblem(t, await app.inject({ method: 'POST', url: '/register' }), 400, 'validation_failed')

  const big = JSON.stringify({ ...JSON.parse(account), name: 'x'.repeat(16_384) })
  assertProblem(t, await app.inject({ method: 'POST', url: '/register', headers: { 'content-type': 'application/json' }, payload: big }), 413, 'payload_too_large')
  const justUnder = JSON.stringify({ ...JSON.parse(account), pad: '' })
  const padded = justUnder.replace('"pad":""', `"pad":"${'x'.repeat(16_384 - justUnder.length)}"`)
  t.equal(Buffer.byteLength(padded), 16_384)
  assertProblem(t, await app.inject({ method: 'POST', url: '/register', headers: { 'content-type': 'application/json' }, payload: padded }), 400, 'validation_failed')

  const proto = await app.inject({ method: 'POST', url: '/register', headers: { 'content-type': 'application/json' }, payload: `{"__proto__": {"admin": true}, ${account.slice(1)}` })
  assertProblem(t, proto, 400, 'validation_failed')
  const ctor = await app.inject({ method: 'POST', url: '/register', headers: { 'content-type': 'application/json' }, payload: `{"constructor": {"prototype": {"admin": true}}, ${account.slice(1)}` })
  assertProblem(t, ctor, 400, 'validation_failed')

  const withCharset = await app.inject({ method: 'POST', url: '/register', headers: { 'content-type': 'application/json; charset=utf-8' }, payload: account })
  t.equal(withCharset.statusCode, 201)
  const [{ n: after }] = await rows<{ n: number }>(sql`select count(*)::int as n from users`) as [{ n: number }]
  t.equal(after, before + 1, 'only the valid request wrote')
})

t.test('unknown routes and methods are 404 problems', async t => {
  const app = await build(t)
  const res = await app.inject({ url: '/nope?x=1' })
  const body = assertProblem(t, res, 404, 'not_found')
  t.equal(body.detail, 'No route for GET /nope')
  t.equal(res.headers['cache-control'], 'no-store')
  assertProblem(t, await app.inject({ method: 'GET', url: '/login' }), 404, 'not_found')
})

t.test('headers: no X-Powered-By, no-store on auth responses', async t => {
  const app = await build(t)
  for (const url of ['/health', '/me', '/nope']) {
    const res = await app.inject({ url })
    t.notOk(res.headers['x-powered-by'], url)
    t.equal(res.headers['cache-control'], 'no-store', url)
  }
})

t.test('health, readiness and the OpenAPI document', async t => {
  const app = await build(t)
  const health = await app.inject({ url: '/health' })
  t.equal(health.statusCode, 200)
  t.same(health.json(), { status: 'ok' })
  const ready = await app.inject({ url: '/ready' })
  t.equal(ready.statusCode, 200)
  t.same(ready.json(), { status: 'ready' })

  const doc = await app.inject({ url: '/openapi.json' })
  t.equal(doc.statusCode, 200)
  const spec = doc.json()
  t.equal(spec.openapi, '3.1.0')
  for (const path of ['/register', '/login', '/refresh', '/logout', '/me', '/.well-known/jwks.json', '/health', '/ready']) {
    t.ok(spec.paths[path], `documents ${path}`)
  }
  t.ok(spec.components.securitySchemes.bearerAuth)
  t.ok(spec.paths['/register'].post.responses['409'].content['application/problem+json'])
})

t.test('a database failure is a 503 problem; an unexpected error a 500 without internals', async t => {
  const app = await build(t)
  const login = stub(t, app.signIn, 'login', async () => { throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }) })
  const down = await app.inject({ method: 'POST', url: '/login', payload: { email: 'a@example.com', password: 'whatever it is' } })
  const body = assertProblem(t, down, 503, 'service_unavailable')
  t.notMatch(JSON.stringify(body), /ECONNREFUSED|5432/)
  t.ok(down.headers['retry-after'])

  app.signIn.login = async () => { throw new Error('secret internal detail: relation "users" does not exist') }
  const boom = await app.inject({ method: 'POST', url: '/login', payload: { email: 'a@example.com', password: 'whatever it is' } })
  const problem = assertProblem(t, boom, 500, 'internal_error')
  t.notMatch(boom.body, /secret internal detail|relation|stack/)
  t.same(Object.keys(problem).sort(), ['code', 'detail', 'status', 'title', 'type'])
  const logged = app.logs.map(l => JSON.parse(l)).find(l => l.level === 50 && l.err?.message?.includes('secret internal detail'))
  t.ok(logged, 'the error is logged in full')
  t.ok(logged.reqId, 'with its request id')
  login.restore()
  t.equal((await app.inject({ method: 'POST', url: '/login', payload: { email: 'a@example.com', password: 'whatever it is' } })).statusCode, 401, 'restored: a plain refusal again')
})

t.test('/ready is 503 when the database does not answer', async t => {
  const app = await build(t)
  const execute = stub(t, app.db, 'execute', (async () => { throw Object.assign(new Error('Connection terminated'), { code: 'CONNECTION_CLOSED' }) }) as unknown as typeof app.db.execute)
  assertProblem(t, await app.inject({ url: '/ready' }), 503, 'service_unavailable')
  execute.restore()
  t.equal((await app.inject({ url: '/ready' })).statusCode, 200, 'and 200 again once it does')
})

t.test('the general per-IP limit applies to other routes and to 404s', async t => {
  const app = await build(t, { env: { RATE_LIMIT_IP: '2' } })
  t.equal((await app.inject({ url: '/nope' })).statusCode, 404)
  t.equal((await app.inject({ url: '/health' })).statusCode, 200)
  const limited = await app.inject({ url: '/health' })
  assertProblem(t, limited, 429, 'too_many_requests')
  t.ok(limited.headers['retry-after'])
  assertProblem(t, await app.inject({ url: '/nope' }), 429, 'too_many_requests')
})

t.test('per-IP limit on /register', async t => {
  const app = await build(t, { env: { RATE_LIMIT_REGISTER_IP: '1' } })
  t.equal((await app.inject({ method: 'POST', url: '/register', payload: newAccount() })).statusCode, 201)
  const limited = await app.inject({ method: 'POST', url: '/register', payload: newAccount() })
  assertProblem(t, limited, 429, 'too_many_requests')
  t.equal(limited.headers['ratelimit-limit'], '1')
  t.ok(Number(limited.headers['retry-after']) > 3500)
})

t.test('per-IP limit on /refresh', async t => {
  const app = await build(t, { env: { RATE_LIMIT_REFRESH_IP: '1' } })
  const payload = { refreshToken: 'A'.repeat(43) }
  t.equal((await app.inject({ method: 'POST', url: '/refresh', payload })).statusCode, 401)
  assertProblem(t, await app.inject({ method: 'POST', url: '/refresh', payload }), 429, 'too_many_requests')
  t.equal((await app.inject({ method: 'POST', url: '/login', payload: { email: 'a@example.com', password: 'whatever it is' } })).statusCode, 401, 'login keeps its own budget')
})

t.test('docs and the demo page: on in development, off by config or in production', async t => {
  const dev = await build(t)
  const docs = await dev.inject({ url: '/docs/' })
  t.equal(docs.statusCode, 200)
  t.match(docs.headers['content-type'], /text\/html/)
  const demo = await dev.inject({ url: '/demo' })
  t.equal(demo.statusCode, 200)
  t.match(String(demo.headers['content-security-policy']), /script-src 'self'/)
  t.equal((await dev.inject({ url: '/demo/app.js' })).statusCode, 200)
  // the passkey library: its ES module files as JavaScript, and nothing else under that path
  for (const url of ['/demo/vendor/simplewebauthn/index.js', '/demo/vendor/simplewebauthn/methods/startRegistration.js']) {
    const module = await dev.inject({ url })
    t.equal(module.statusCode, 200, url)
    t.equal(module.headers['content-type'], 'text/javascript; charset=utf-8', url)
  }
  for (const path of ['index.d.ts', 'package.json', '../app.js', '..%2fapp.js', '%2e%2e/%2e%2e/package.json', 'methods/..%2f..%2f..%2fpackage.json', '/etc/passwd', '']) {
    assertProblem(t, await dev.inject({ url: `/demo/vendor/simplewebauthn/${path}` }), 404, 'not_found')
  }

  const prod = await build(t, { env: { NODE_ENV: 'production', DOCS_ENABLED: 'false', SMTP_URL: 'smtp://127.0.0.1:1', APP_URL: 'https://app.example.com' } })
  assertProblem(t, await prod.inject({ url: '/docs/' }), 404, 'not_found')
  assertProblem(t, await prod.inject({ url: '/demo' }), 404, 'not_found')
  assertProblem(t, await prod.inject({ url: '/demo/vendor/simplewebauthn/index.js' }), 404, 'not_found')
  t.equal((await prod.inject({ url: '/openapi.json' })).statusCode, 200, 'the document itself stays')
})
