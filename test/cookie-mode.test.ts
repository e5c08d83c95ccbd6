import t from 'tap'
import { assertProblem, bearer, build, newAccount, type TestApp } from './helper.js'

const COOKIE = { 'x-auth-mode': 'cookie' }
const ORIGIN = 'https://app.example.com'

function refreshCookie (res: { headers: Record<string, unknown> }, name = '__Host-refresh') {
  const raw = ([] as string[]).concat((res.headers['set-cookie'] as string | string[] | undefined) ?? [])
  const line = raw.find(c => c.startsWith(`${name}=`))
  if (!line) return undefined
  const [pair, ...attrs] = line.split('; ')
  return { value: pair!.slice(name.length + 1), attrs: attrs.map(a => a.toLowerCase()), line }
}

async function signUp (app: TestApp, extra: Record<string, unknown> = {}) {
  const res = await app.inject({ method: 'POST', url: '/register', headers: COOKIE, payload: newAccount(extra) })
  t.equal(res.statusCode, 201)
  return res
}

t.test('register and login in cookie mode: HttpOnly __Host- cookie, no refresh token in the body', async t => {
  const app = await build(t, { env: { CORS_ORIGINS: ORIGIN } })
  const res = await signUp(app)
  const body = res.json()
  t.same(Object.keys(body).sort(), ['accessToken', 'expiresIn', 'tokenType', 'user'])
  const cookie = refreshCookie(res)!
  t.match(cookie.value, /^[A-Za-z0-9_-]{71}$/)
  t.same(cookie.attrs.sort(), ['httponly', 'path=/', 'samesite=strict', 'secure'], 'a session cookie without rememberMe')
  t.notMatch(res.body, cookie.value)
  t.equal((await app.inject({ url: '/me', headers: bearer(body.accessToken) })).statusCode, 200)

  const remembered = refreshCookie(await signUp(app, { rememberMe: true }))!
  t.ok(remembered.attrs.includes('max-age=2592000'), 'persistent with rememberMe')

  const account = newAccount()
  await app.inject({ method: 'POST', url: '/register', payload: account })
  const login = await app.inject({ method: 'POST', url: '/login', headers: COOKIE, payload: { email: account.email, password: account.password } })
  t.equal(login.statusCode, 200)
  t.ok(refreshCookie(login))
  t.notOk(login.json().refreshToken)
})

t.test('refresh and logout read the cookie when there is no body', async t => {
  const app = await build(t, { env: { CORS_ORIGINS: ORIGIN } })
  const first = refreshCookie(await signUp(app))!
  const refreshed = await app.inject({ method: 'POST', url: '/refresh', headers: { ...COOKIE, origin: ORIGIN, cookie: `__Host-refresh=${first.value}` } })
  t.equal(refreshed.statusCode, 200)
  t.notOk(refreshed.json().refreshToken)
  const second = refreshCookie(refreshed)!
  t.not(second.value, first.value, 'rotated')

  const out = await app.inject({ method: 'POST', url: '/logout', headers: { ...COOKIE, cookie: `__Host-refresh=${second.value}` } })
  t.equal(out.statusCode, 204)
  const cleared = refreshCookie(out)!
  t.equal(cleared.value, '')
  t.ok(cleared.attrs.includes('max-age=0'))
  const after = await app.inject({ method: 'POST', url: '/refresh', headers: { ...COOKIE, cookie: `__Host-refresh=${second.value}` } })
  assertProblem(t, after, 401, 'session_revoked')
  t.equal(refreshCookie(after)?.value, '', 'a dead cookie is cleared')
})

t.test('a refresh with no token anywhere is 401 invalid_token', async t => {
  const app = await build(t)
  const res = await app.inject({ method: 'POST', url: '/refresh', headers: COOKIE })
  assertProblem(t, res, 401, 'invalid_token')
  assertProblem(t, await app.inject({ method: 'POST', url: '/refresh' }), 401, 'invalid_token')
})

t.test('CSRF: the cookie alone, or from a foreign origin, is refused with 403 and nothing changes', async t => {
  const app = await build(t, { env: { CORS_ORIGINS: ORIGIN } })
  const { value } = refreshCookie(await signUp(app))!
  const jar = { cookie: `__Host-refresh=${value}` }
  assertProblem(t, await app.inject({ method: 'POST', url: '/refresh', headers: jar }), 403, 'csrf_check_failed')
  assertProblem(t, await app.inject({ method: 'POST', url: '/refresh', headers: { ...jar, 'x-auth-mode': 'body' } }), 403, 'csrf_check_failed')
  assertProblem(t, await app.inject({ method: 'POST', url: '/refresh', headers: { ...jar, ...COOKIE, origin: 'https://evil.example' } }), 403, 'csrf_check_failed')
  assertProblem(t, await app.inject({ method: 'POST', url: '/logout', headers: { ...jar, origin: ORIGIN } }), 403, 'csrf_check_failed')
  assertProblem(t, await app.inject({ method: 'POST', url: '/logout', headers: { ...jar, ...COOKIE, origin: 'null' } }), 403, 'csrf_check_failed')
  // same origin as the API itself is fine
  const same = await app.inject({ method: 'POST', url: '/refresh', headers: { ...jar, ...COOKIE, host: 'api.example.com', origin: 'http://api.example.com' } })
  t.equal(same.statusCode, 200, 'the session survived every refused attempt')
})

t.test('COOKIE_SECURE=false drops Secure and the prefix, for plain-http development', async t => {
  const app = await build(t, { env: { COOKIE_SECURE: 'false' } })
  const res = await signUp(app)
  t.notOk(refreshCookie(res))
  const dev = refreshCookie(res, 'refresh')!
  t.same(dev.attrs.sort(), ['httponly', 'path=/', 'samesite=strict'])
  const refreshed = await app.inject({ method: 'POST', url: '/refresh', headers: { ...COOKIE, cookie: `refresh=${dev.value}` } })
  t.equal(refreshed.statusCode, 200)
})

t.test('CORS: listed origins only, with credentials; preflight works', async t => {
  const app = await build(t, { env: { CORS_ORIGINS: `${ORIGIN}, http://localhost:5173` } })
  const preflight = await app.inject({
    method: 'OPTIONS',
    url: '/refresh',
    headers: { origin: ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-auth-mode' },
  })
  t.equal(preflight.statusCode, 204)
  t.equal(preflight.headers['access-control-allow-origin'], ORIGIN)
  t.equal(preflight.headers['access-control-allow-credentials'], 'true')
  t.match(String(preflight.headers['access-control-allow-headers']), /x-auth-mode/)
  t.match(String(preflight.headers['access-control-allow-methods']), /POST/)
  // an app on a listed origin can also end a session, edit the profile, turn two-factor sign-in off
  const deletion = await app.inject({
    method: 'OPTIONS',
    url: '/mfa/totp',
    headers: { origin: ORIGIN, 'access-control-request-method': 'DELETE', 'access-control-request-headers': 'content-type,authorization' },
  })
  t.equal(deletion.statusCode, 204)
  t.same(String(deletion.headers['access-control-allow-methods']).split(',').map(m => m.trim()).sort(), ['DELETE', 'GET', 'PATCH', 'POST'])

  const simple = await app.inject({ url: '/health', headers: { origin: 'http://localhost:5173' } })
  t.equal(simple.headers['access-control-allow-origin'], 'http://localhost:5173')
  t.match(String(simple.headers.vary), /Origin/i)

  const foreign = await app.inject({ method: 'OPTIONS', url: '/refresh', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } })
  t.notOk(foreign.headers['access-control-allow-origin'])
  t.notOk(foreign.headers['access-control-allow-credentials'])
  const foreignGet = await app.inject({ url: '/health', headers: { origin: 'https://evil.example' } })
  t.notOk(foreignGet.headers['access-control-allow-origin'])
})
