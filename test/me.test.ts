import { createHmac, createPrivateKey, sign as edSign } from 'node:crypto'
import t from 'tap'
import { generateSigningKey } from '../src/auth/keys.js'
import { assertProblem, bearer, build, fakeClock, register, testKey, type Test, type TestApp } from './helper.js'

const me = (app: TestApp, headers: Record<string, string> = {}) => app.inject({ url: '/me', headers })
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url')

function decode (token: string) {
  const [h, p] = token.split('.') as [string, string]
  return { header: JSON.parse(Buffer.from(h, 'base64url').toString()), payload: JSON.parse(Buffer.from(p, 'base64url').toString()) }
}

/** A JWT signed with Ed25519 by `pem`, with any header and payload. */
function edToken (pem: string, header: object, payload: object) {
  const input = `${b64(header)}.${b64(payload)}`
  return `${input}.${edSign(null, Buffer.from(input), createPrivateKey(pem)).toString('base64url')}`
}

function assertChallenge (t: Test, res: Awaited<ReturnType<typeof me>>, withError = true) {
  assertProblem(t, res, 401, 'invalid_token')
  t.equal(res.headers['www-authenticate'], withError ? 'Bearer realm="api", error="invalid_token"' : 'Bearer realm="api"')
}

t.test('returns the user of a valid access token', async t => {
  const app = await build(t)
  const { tokens } = await register(app)
  const res = await me(app, bearer(tokens.accessToken))
  t.equal(res.statusCode, 200)
  t.equal(res.headers['cache-control'], 'no-store')
  t.same(res.json(), { ...tokens.user, role: 'user', emailVerified: false, mfa: { totp: false, recoveryCodesLeft: 0, passkeys: 0 } }, 'the token response\'s user, with role, verification state and no second factor')
  t.equal((await me(app, { authorization: `bearer ${tokens.accessToken}` })).statusCode, 200, 'the scheme is case-insensitive')
})

t.test('the access token: EdDSA, typ at+jwt, kid, and the claims', async t => {
  const app = await build(t)
  const { tokens } = await register(app)
  const { header, payload } = decode(tokens.accessToken)
  t.same(header, { alg: 'EdDSA', typ: 'at+jwt', kid: testKey().kid })
  t.same(Object.keys(payload).sort(), ['aal', 'amr', 'aud', 'email_verified', 'exp', 'iat', 'iss', 'jti', 'role', 'sid', 'sub'])
  t.same([payload.aal, payload.amr], ['aal1', ['pwd']], 'a password at registration: aal1, pwd')
  t.equal(payload.email_verified, false)
  t.equal(payload.role, 'user')
  t.equal(payload.iss, 'auth-api')
  t.equal(payload.aud, 'auth-api')
  t.equal(payload.sub, tokens.user.id)
  t.equal(payload.exp - payload.iat, 900)

  const jwks = await app.inject({ url: '/.well-known/jwks.json' })
  t.equal(jwks.statusCode, 200)
  t.equal(jwks.headers['cache-control'], 'public, max-age=300')
  const { keys } = jwks.json()
  t.equal(keys.length, 1)
  t.same(Object.keys(keys[0]).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x'], 'no private member')
  t.equal(keys[0].kid, header.kid)
})

t.test('missing, malformed, forged, expired and confused tokens are 401 with the RFC 6750 challenge', async t => {
  const app = await build(t)
  const { tokens } = await register(app)
  const good = decode(tokens.accessToken)
  const pem = testKey().privatePem
  const now = Math.floor(Date.now() / 1000)

  assertChallenge(t, await me(app), false)
  assertChallenge(t, await me(app, { authorization: 'Basic dXNlcjpwYXNz' }))
  assertChallenge(t, await me(app, { authorization: 'Bearer' }))
  assertChallenge(t, await me(app, bearer('not.a.jwt')))
  assertChallenge(t, await me(app, bearer(tokens.refreshToken)))
  assertChallenge(t, await me(app, bearer(tokens.accessToken.slice(0, -4))))
  assertChallenge(t, await me(app, bearer(`${tokens.accessToken}AAAA`)))

  // alg none
  assertChallenge(t, await me(app, bearer(`${b64({ ...good.header, alg: 'none' })}.${b64(good.payload)}.`)))
  // HS256 "signed" with the public key
  const hsInput = `${b64({ ...good.header, alg: 'HS256' })}.${b64(good.payload)}`
  const hs = createHmac('sha256', testKey().publicPem).update(hsInput).digest('base64url')
  assertChallenge(t, await me(app, bearer(`${hsInput}.${hs}`)))
  // payload edited after signing
  const [h, , s] = tokens.accessToken.split('.')
  assertChallenge(t, await me(app, bearer(`${h}.${b64({ ...good.payload, sub: '00000000-0000-7000-8000-000000000000' })}.${s}`)))
  // another key claiming our kid
  assertChallenge(t, await me(app, bearer(edToken(generateSigningKey().privatePem, good.header, good.payload))))
  // our key, but wrong claims or header
  assertChallenge(t, await me(app, bearer(edToken(pem, { ...good.header, typ: 'JWT' }, good.payload))))
  assertChallenge(t, await me(app, bearer(edToken(pem, { ...good.header, kid: 'unknown' }, good.payload))))
  assertChallenge(t, await me(app, bearer(edToken(pem, good.header, { ...good.payload, iss: 'someone-else' }))))
  assertChallenge(t, await me(app, bearer(edToken(pem, good.header, { ...good.payload, aud: 'another-api' }))))
  assertChallenge(t, await me(app, bearer(edToken(pem, good.header, { ...good.payload, exp: now - 31 }))))
  assertChallenge(t, await me(app, bearer(edToken(pem, good.header, { ...good.payload, sid: 'not-a-uuid' }))))
  assertChallenge(t, await me(app, bearer(edToken(pem, good.header, { ...good.payload, jti: undefined }))))
  t.equal((await me(app, bearer(edToken(pem, good.header, { ...good.payload, exp: now - 5 })))).statusCode, 200, 'within the 30 s tolerance')
})

t.test('an access token issued longer ago than its lifetime is refused', async t => {
  const past = fakeClock(Date.now() - 3600_000)
  const issuer = await build(t, { clock: past })
  const { tokens } = await register(issuer)
  const app = await build(t)
  assertChallenge(t, await me(app, bearer(tokens.accessToken)))
  t.equal((await app.inject({ method: 'POST', url: '/refresh', payload: { refreshToken: tokens.refreshToken } })).statusCode, 200, 'the refresh token still works')
})

t.test('tokens of an expired session are refused', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock, env: { SESSION_ABSOLUTE_TTL: '600' } })
  const { tokens } = await register(app)
  clock.advance(601_000)
  assertChallenge(t, await me(app, bearer(tokens.accessToken)))
})
