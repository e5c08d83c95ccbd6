import { randomBytes, randomUUID } from 'node:crypto'
import type { AuthenticationResponseJSON, PublicKeyCredentialCreationOptionsJSON, PublicKeyCredentialRequestOptionsJSON, RegistrationResponseJSON } from '@simplewebauthn/server'
import { isoBase64URL } from '@simplewebauthn/server/helpers'
import { sql } from 'drizzle-orm'
import t from 'tap'
import {
  assertProblem, build, call, claims, fakeClock, login, loginMfa, me, refresh, register, rows, signIn, totp, totpAccount,
  type Test, type TestApp, type TokenBody,
} from './helper.js'
import {
  editClientData, readClientData, softAuthenticator, tamperSignature,
  type AuthenticateContext, type RegisterContext, type SoftAlgorithm, type SoftAuthenticator,
} from './webauthn-authenticator.js'

// Passkeys: adding, naming and removing them (signed in), and signing in with one (no account named).
// The browser's side is the software authenticator of test/webauthn-authenticator.ts.

/** The origin and RP ID of the test settings (APP_URL unset, development-like: http://localhost:PORT). */
const ORIGIN = 'http://localhost:3000'
const EVIL = 'https://evil.example'
const TTL = 5 * 60_000
const STEP = 30_000
const COOKIE = { 'x-auth-mode': 'cookie' }
const APP_ORIGIN = 'https://app.example.com'
const TOKEN_KEYS = ['accessToken', 'expiresIn', 'refreshExpiresIn', 'refreshToken', 'tokenType', 'user']
const VIEW_KEYS = ['backedUp', 'createdAt', 'deviceType', 'id', 'lastUsedAt', 'name']
const ALGORITHMS: [SoftAlgorithm, number][] = [['ES256', -7], ['Ed25519', -8], ['RS256', -257]]

interface View { id: string, name: string, createdAt: string, lastUsedAt: string | null, backedUp: boolean, deviceType: string }
type Headers = Record<string, string>

const registrationOptions = async (app: TestApp, token: string) => {
  const res = await call(app, 'POST', '/passkeys/register/options', token)
  if (res.statusCode !== 200) throw new Error(`register options: ${res.statusCode} ${res.body}`)
  return res.json() as PublicKeyCredentialCreationOptionsJSON
}
const postRegistration = (app: TestApp, token: string, response: unknown, name?: string) =>
  call(app, 'POST', '/passkeys/register', token, name === undefined ? { response } : { response, name })
const listPasskeys = async (app: TestApp, token: string) => {
  const res = await call(app, 'GET', '/passkeys', token)
  if (res.statusCode !== 200) throw new Error(`list: ${res.statusCode} ${res.body}`)
  return (res.json() as { passkeys: View[] }).passkeys
}
const rename = (app: TestApp, token: string, id: string, payload: object) => call(app, 'PATCH', `/passkeys/${id}`, token, payload)
const remove = (app: TestApp, token: string, id: string) => call(app, 'DELETE', `/passkeys/${id}`, token)
const passkeyCount = async (app: TestApp, token: string) => (await me(app, token)).json().mfa.passkeys as number

/** Adds a passkey of `authenticator` to the account of `token`: the answer, and the options it answered. */
async function addPasskey (app: TestApp, token: string, authenticator: SoftAuthenticator = softAuthenticator(), ctx: Partial<RegisterContext> = {}, name?: string) {
  const options = await registrationOptions(app, token)
  const res = await postRegistration(app, token, authenticator.register(options, { origin: ORIGIN, ...ctx }), name)
  if (res.statusCode !== 201) throw new Error(`register passkey: ${res.statusCode} ${res.body}`)
  return { passkey: res.json() as View, options, res }
}

/** A new account with one passkey (registered with user verification). */
async function passkeyUser (app: TestApp, algorithm: SoftAlgorithm = 'ES256') {
  const { body: account, tokens } = await register(app)
  const authenticator = softAuthenticator({ algorithm })
  const { passkey, options } = await addPasskey(app, tokens.accessToken, authenticator)
  return { account, tokens, authenticator, passkey, handle: options.user.id }
}

const signInOptionsRes = (app: TestApp) => app.inject({ method: 'POST', url: '/login/passkey/options' })
const signInOptions = async (app: TestApp) => {
  const res = await signInOptionsRes(app)
  if (res.statusCode !== 200) throw new Error(`sign-in options: ${res.statusCode} ${res.body}`)
  return res.json() as PublicKeyCredentialRequestOptionsJSON
}
const passkeyLogin = (app: TestApp, response: unknown, extra: Record<string, unknown> = {}, headers: Headers = {}) =>
  app.inject({ method: 'POST', url: '/login/passkey', headers, payload: { response, ...extra } })
/** An assertion of `authenticator` for fresh sign-in options. */
const assertion = async (app: TestApp, authenticator: SoftAuthenticator, ctx: Partial<AuthenticateContext> = {}) =>
  authenticator.authenticate(await signInOptions(app), { origin: ORIGIN, ...ctx })

const sessionCount = async (userId: string) => (await rows<{ n: number }>(sql`select count(*)::int as n from sessions where user_id = ${userId}`))[0]!.n
const sessionRow = async (accessToken: string) =>
  (await rows<{ aal: string, amr: string[], remember_me: boolean }>(sql`select aal, amr, remember_me from sessions where id = ${claims(accessToken).sid as string}`))[0]
const passkeyRows = (userId: string) => rows<{ id: string, credential_id: string, public_key: string, counter: number, transports: string[], backed_up: boolean, device_type: string, name: string, last_used_at: unknown }>(
  sql`select id, credential_id, public_key, counter::int as counter, transports, backed_up, device_type, name, last_used_at from passkeys where user_id = ${userId} order by created_at, id`)
const challengeRows = (challenge: string) => rows<{ purpose: string, user_id: string | null }>(sql`select purpose, user_id from webauthn_challenges where challenge = ${challenge}`)
const audits = (app: TestApp, event: string) => app.logs.map(l => JSON.parse(l) as Record<string, unknown>).filter(l => l.audit === event)
const proof = (accessToken: string) => { const c = claims(accessToken); return { aal: c.aal, amr: c.amr } }
const randomB64 = (n: number) => isoBase64URL.fromBuffer(new Uint8Array(randomBytes(n)))
const b64Json = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url')

function refreshCookie (res: { headers: Record<string, unknown> }) {
  const line = ([] as string[]).concat((res.headers['set-cookie'] as string | string[] | undefined) ?? []).find(c => c.startsWith('__Host-refresh='))
  if (!line) return undefined
  const [pair, ...attrs] = line.split('; ')
  return { value: pair!.slice('__Host-refresh='.length), attrs: attrs.map(a => a.toLowerCase()) }
}

// --- registration ---------------------------------------------------------------------------------

t.test('register options: the creation options of a discoverable passkey; a random user handle, the same every time; no-store; 401 without a token', async t => {
  const app = await build(t)
  const { body: account, tokens } = await register(app)
  const res = await call(app, 'POST', '/passkeys/register/options', tokens.accessToken)
  t.equal(res.statusCode, 200, res.body)
  t.equal(res.headers['cache-control'], 'no-store')
  t.match(String(res.headers['content-type']), /^application\/json/)
  const options = res.json() as PublicKeyCredentialCreationOptionsJSON
  t.same(options.authenticatorSelection, { residentKey: 'required', userVerification: 'preferred', requireResidentKey: true })
  t.equal(options.attestation, 'none')
  t.same(options.pubKeyCredParams.map(p => p.alg), [-8, -7, -257], 'Ed25519, ES256, RS256 and nothing else')
  t.ok(options.pubKeyCredParams.every(p => p.type === 'public-key'))
  t.same(options.rp, { id: 'localhost', name: 'Auth API' })
  t.equal(options.timeout, TTL)
  t.same(options.excludeCredentials, [], 'no passkeys yet')
  t.match(options.challenge, /^[A-Za-z0-9_-]{43,}$/, 'at least 256 bits')
  t.equal(options.user.name, account.email)

  // the user handle: random, neither the id nor the email, kept for the account
  const handle = options.user.id
  t.match(handle, /^[A-Za-z0-9_-]{43}$/, '32 random bytes, base64url')
  t.not(handle, tokens.user.id)
  t.notOk(handle.includes(tokens.user.id.replace(/-/g, '')))
  const decoded = Buffer.from(handle, 'base64url')
  t.notOk(decoded.toString('utf8').includes(account.email) || decoded.toString('hex') === tokens.user.id.replace(/-/g, ''), 'not the email, not the id bytes')
  t.not(handle, Buffer.from(account.email).toString('base64url'))
  t.same(await rows(sql`select passkey_handle from users where id = ${tokens.user.id}`), [{ passkey_handle: handle }])

  const again = await registrationOptions(app, tokens.accessToken)
  t.equal(again.user.id, handle, 'the same handle for a second call')
  t.not(again.challenge, options.challenge, 'a new challenge')
  const other = await registrationOptions(app, (await register(app)).tokens.accessToken)
  t.not(other.user.id, handle, 'another user, another handle')

  // the challenges are kept server-side, for this user and this purpose
  t.same(await challengeRows(options.challenge), [{ purpose: 'register', user_id: tokens.user.id }])
  t.same(await challengeRows(again.challenge), [{ purpose: 'register', user_id: tokens.user.id }])

  // excludeCredentials lists the user's passkeys
  const first = softAuthenticator()
  const second = softAuthenticator({ algorithm: 'Ed25519' })
  await addPasskey(app, tokens.accessToken, first)
  await addPasskey(app, tokens.accessToken, second)
  const listed = await registrationOptions(app, tokens.accessToken)
  t.same(listed.excludeCredentials, [
    { id: first.credential().id, type: 'public-key', transports: ['internal'] },
    { id: second.credential().id, type: 'public-key', transports: ['internal'] },
  ])
  t.equal(listed.user.id, handle, 'still the same handle')
  t.same(other.excludeCredentials, [], 'not another user\'s')
  t.throws(() => first.register(listed, { origin: ORIGIN }), /InvalidStateError/, 'an authenticator holding one of them refuses')

  const anonymous = await app.inject({ method: 'POST', url: '/passkeys/register/options' })
  assertProblem(t, anonymous, 401, 'invalid_token')
  t.equal(anonymous.headers['www-authenticate'], 'Bearer realm="api"')
  assertProblem(t, await call(app, 'POST', '/passkeys/register/options', 'not.a.token'), 401, 'invalid_token')
  for (const [method, url] of [['POST', '/passkeys/register'], ['GET', '/passkeys'], ['PATCH', `/passkeys/${randomUUID()}`], ['DELETE', `/passkeys/${randomUUID()}`]] as const) {
    const res = await app.inject({ method, url, ...(method === 'POST' || method === 'PATCH' ? { payload: { name: 'x' } } : {}) })
    assertProblem(t, res, 401, 'invalid_token')
  }
})

for (const [algorithm, alg] of ALGORITHMS) {
  t.test(`register with ${algorithm}: 201 the passkey, the row kept, the challenge spent, an audit line`, async t => {
    const clock = fakeClock()
    const app = await build(t, { clock })
    const { tokens } = await register(app)
    const authenticator = softAuthenticator({ algorithm })
    const options = await registrationOptions(app, tokens.accessToken)
    clock.advance(1_000)
    const response = authenticator.register(options, { origin: ORIGIN })
    const res = await postRegistration(app, tokens.accessToken, response)
    t.equal(res.statusCode, 201, res.body)
    t.equal(res.headers['cache-control'], 'no-store')
    const body = res.json() as View
    t.same(Object.keys(body).sort(), VIEW_KEYS)
    t.match(body.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'a uuid v7')
    t.same(body, { id: body.id, name: 'Passkey', createdAt: new Date(clock.now()).toISOString(), lastUsedAt: null, backedUp: false, deviceType: 'singleDevice' }, 'the default name')

    const [row] = await passkeyRows(tokens.user.id)
    t.match(row, { id: body.id, credential_id: response.id, counter: 0, transports: ['internal'], backed_up: false, device_type: 'singleDevice', name: 'Passkey', last_used_at: null })
    // the COSE key as the authenticator sent it, with its algorithm
    t.same(Buffer.from(row!.public_key, 'base64url'), Buffer.from(authenticator.credential().cosePublicKey))
    t.equal(alg, (await registrationOptions(app, tokens.accessToken)).pubKeyCredParams.find(p => p.alg === alg)?.alg)
    t.same(await challengeRows(options.challenge), [], 'the challenge is spent')
    t.same(await listPasskeys(app, tokens.accessToken), [body])
    t.equal(await passkeyCount(app, tokens.accessToken), 1, '/me counts it')
    t.match(audits(app, 'passkey_registered'), [{ userId: tokens.user.id, sessionId: claims(tokens.accessToken).sid, passkeyId: body.id, deviceType: 'singleDevice' }])

    // it signs in
    const signedIn = await passkeyLogin(app, await assertion(app, authenticator))
    t.equal(signedIn.statusCode, 200, signedIn.body)
    t.equal((signedIn.json() as TokenBody).user.id, tokens.user.id)
  })
}

t.test('register: a name (trimmed; blank means the default), without user verification, a synced passkey', async t => {
  const app = await build(t)
  const { tokens } = await register(app)
  const named = await addPasskey(app, tokens.accessToken, softAuthenticator(), {}, '  iPhone ')
  t.equal(named.passkey.name, 'iPhone')
  const blank = await addPasskey(app, tokens.accessToken, softAuthenticator(), {}, '   ')
  t.equal(blank.passkey.name, 'Passkey')
  const noUv = await addPasskey(app, tokens.accessToken, softAuthenticator(), { userVerified: false })
  t.equal(noUv.res.statusCode, 201, 'user verification is preferred, not required')
  const synced = await addPasskey(app, tokens.accessToken, softAuthenticator(), { backedUp: true }, 'Phone')
  t.match(synced.passkey, { backedUp: true, deviceType: 'multiDevice', name: 'Phone' })
  t.same((await listPasskeys(app, tokens.accessToken)).map(p => p.name), ['iPhone', 'Passkey', 'Passkey', 'Phone'], 'oldest first')
  t.equal(await passkeyCount(app, tokens.accessToken), 4)
})

t.test('registration refusals: 400 passkey_invalid, nothing kept, an audit line', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock })
  const { tokens } = await register(app)
  const { tokens: other } = await register(app)
  const token = tokens.accessToken
  const fresh = () => registrationOptions(app, token)
  const answer = (options: PublicKeyCredentialCreationOptionsJSON, ctx: Partial<RegisterContext> = {}) => softAuthenticator().register(options, { origin: ORIGIN, ...ctx })

  const cases: [string, () => Promise<unknown>][] = [
    ['a challenge used already (the same options twice)', async () => {
      const options = await fresh()
      const authenticator = softAuthenticator()
      t.equal((await postRegistration(app, token, authenticator.register(options, { origin: ORIGIN }))).statusCode, 201)
      return softAuthenticator().register(options, { origin: ORIGIN })
    }],
    ['the same response replayed', async () => {
      const response = answer(await fresh())
      t.equal((await postRegistration(app, token, response)).statusCode, 201)
      return response
    }],
    ['an expired challenge (5 minutes)', async () => {
      const options = await fresh()
      clock.advance(TTL + 1_000)
      return answer(options)
    }],
    ['another user\'s challenge', async () => answer(await registrationOptions(app, other.accessToken))],
    ['a sign-in challenge', async () => answer(await fresh(), { challenge: (await signInOptions(app)).challenge })],
    ['a challenge never issued', async () => answer(await fresh(), { challenge: randomB64(32) })],
    ['another origin', async () => softAuthenticator().withOrigin(answer(await fresh()), EVIL)],
    ['another origin (a subdomain)', async () => answer(await fresh(), { origin: 'http://evil.localhost:3000' })],
    ['another port', async () => answer(await fresh(), { origin: 'http://localhost:3001' })],
    ['another RP ID', async () => answer(await fresh(), { rpId: 'evil.example' })],
    ['from a cross-origin frame of another site', async () => editClientData(answer(await fresh()), { crossOrigin: true, topOrigin: EVIL })],
    ['clientDataJSON of the wrong type (webauthn.get)', async () => answer(await fresh(), { type: 'webauthn.get' })],
    ['clientDataJSON garbage base64', async () => { const r = answer(await fresh()); return { ...r, response: { ...r.response, clientDataJSON: randomB64(40) } } }],
    ['attestationObject garbage base64', async () => { const r = answer(await fresh()); return { ...r, response: { ...r.response, attestationObject: randomB64(120) } } }],
    ['attestationObject cut short', async () => { const r = answer(await fresh()); return { ...r, response: { ...r.response, attestationObject: r.response.attestationObject.slice(0, 60) } } }],
  ]
  for (const [name, make] of cases) {
    const response = await make()
    const before = (await passkeyRows(tokens.user.id)).length
    const res = await postRegistration(app, token, response)
    const body = assertProblem(t, res, 400, 'passkey_invalid')
    t.type(body.detail, 'string', name)
    t.equal(res.headers['cache-control'], 'no-store')
    t.equal((await passkeyRows(tokens.user.id)).length, before, `${name}: nothing kept`)
    const challenge = (() => { try { return readClientData(response as RegistrationResponseJSON).challenge } catch { return undefined } })()
    if (typeof challenge === 'string') t.same(await challengeRows(challenge), [], `${name}: no challenge left to retry with`)
  }
  t.same((await passkeyRows(other.user.id)), [], 'nothing for the other user either')
  const failed = audits(app, 'passkey_registration_failed')
  t.equal(failed.length, cases.length)
  t.ok(failed.every(l => l.userId === tokens.user.id && l.code === 'passkey_invalid'))

  // a response that does not have the shape of one: 400 too, before any challenge is touched
  const options = await fresh()
  const good = answer(options)
  for (const bad of [{ ...good, type: 'password' }, { ...good, response: { ...good.response, clientDataJSON: '!!not base64!!' } }, { ...good, id: 42 }, { ...good, response: {} }]) {
    assertProblem(t, await postRegistration(app, token, bad), 400, 'validation_failed')
  }
  t.same(await challengeRows(options.challenge), [{ purpose: 'register', user_id: tokens.user.id }], 'the challenge is still there')
  t.equal((await postRegistration(app, token, good)).statusCode, 201, 'and answers once')

  // just inside the five minutes is fine
  const late = await fresh()
  clock.advance(TTL - 1_000)
  t.equal((await postRegistration(app, token, answer(late))).statusCode, 201)
})

t.test('the same credential again: 409 passkey_exists, for this user or another', async t => {
  const app = await build(t)
  const { tokens, authenticator, passkey } = await passkeyUser(app)
  const { tokens: other } = await register(app)
  const credentialId = authenticator.credential().id

  const again = await postRegistration(app, tokens.accessToken, authenticator.register(await registrationOptions(app, tokens.accessToken), { origin: ORIGIN, credentialId }))
  assertProblem(t, again, 409, 'passkey_exists')
  const elsewhere = await postRegistration(app, other.accessToken, authenticator.register(await registrationOptions(app, other.accessToken), { origin: ORIGIN, credentialId }))
  assertProblem(t, elsewhere, 409, 'passkey_exists')
  t.same((await passkeyRows(tokens.user.id)).map(r => r.id), [passkey.id], 'one row, still the first user\'s')
  t.same(await passkeyRows(other.user.id), [])
  t.match(audits(app, 'passkey_registration_failed'), [{ userId: tokens.user.id, code: 'passkey_exists' }, { userId: other.user.id, code: 'passkey_exists' }])

  // and it still signs in as the first user
  const res = await passkeyLogin(app, await assertion(app, authenticator))
  t.equal(res.json().user.id, tokens.user.id)
})

// --- managing ---------------------------------------------------------------------------------------

t.test('list, rename, delete; another user\'s, an unknown or a malformed id: 404 not_found', async t => {
  const app = await build(t)
  const { tokens, authenticator, passkey } = await passkeyUser(app)
  const second = (await addPasskey(app, tokens.accessToken, softAuthenticator({ algorithm: 'RS256' }), {}, 'YubiKey')).passkey
  const { tokens: other, passkey: othersPasskey } = await passkeyUser(app)
  const token = tokens.accessToken

  const listed = await call(app, 'GET', '/passkeys', token)
  t.equal(listed.statusCode, 200)
  t.equal(listed.headers['cache-control'], 'no-store')
  t.same(listed.json(), { passkeys: [passkey, second] })
  t.notOk(listed.body.includes(authenticator.credential().id), 'no credential id')
  t.notOk(listed.body.includes((await passkeyRows(tokens.user.id))[0]!.public_key), 'no public key')
  t.same((await listPasskeys(app, other.accessToken)).map(p => p.id), [othersPasskey.id], 'each user sees only theirs')
  t.equal(await passkeyCount(app, token), 2)

  const renamed = await rename(app, token, passkey.id, { name: ' Work laptop ' })
  t.equal(renamed.statusCode, 200, renamed.body)
  t.equal(renamed.headers['cache-control'], 'no-store')
  t.same(renamed.json(), { ...passkey, name: 'Work laptop' })
  t.equal((await passkeyRows(tokens.user.id))[0]!.name, 'Work laptop')
  t.equal((await rename(app, token, passkey.id.toUpperCase(), { name: 'Laptop' })).json().name, 'Laptop', 'the id in capitals is the same id')
  t.match(audits(app, 'passkey_renamed'), [{ userId: tokens.user.id, passkeyId: passkey.id }, { passkeyId: passkey.id }])
  assertProblem(t, await rename(app, token, passkey.id, { name: '   ' }), 400, 'validation_failed')
  t.equal((await passkeyRows(tokens.user.id))[0]!.name, 'Laptop', 'a blank name is refused')

  const missing = [
    ['another user\'s', othersPasskey.id],
    ['an unknown uuid', randomUUID()],
    ['a malformed id', 'not-a-uuid'],
    ['a uuid with more', `${passkey.id}x`],
    ['an id of digits', '12345'],
  ]
  for (const [name, id] of missing) {
    const patched = await rename(app, token, id!, { name: 'Mine now' })
    t.equal(assertProblem(t, patched, 404, 'not_found').detail, 'No passkey of yours has this id', `PATCH ${name}`)
    assertProblem(t, await remove(app, token, id!), 404, 'not_found')
  }
  t.equal((await passkeyRows(other.user.id))[0]!.name, 'Passkey', 'the other user\'s passkey untouched')
  t.equal((await passkeyRows(other.user.id)).length, 1)

  const deleted = await remove(app, token, second.id)
  t.equal(deleted.statusCode, 204)
  t.equal(deleted.body, '')
  t.same((await passkeyRows(tokens.user.id)).map(r => r.id), [passkey.id])
  t.equal(await passkeyCount(app, token), 1, '/me counts one')
  t.match(audits(app, 'passkey_deleted'), [{ userId: tokens.user.id, sessionId: claims(token).sid, passkeyId: second.id }])
  assertProblem(t, await remove(app, token, second.id), 404, 'not_found')
  assertProblem(t, await rename(app, token, second.id, { name: 'back' }), 404, 'not_found')
  t.equal(await passkeyCount(app, other.accessToken), 1)
})

t.test('step-up: an account with TOTP and a session at aal1 cannot manage passkeys (403 mfa_step_up_required)', async t => {
  const app = await build(t, { clock: fakeClock() })
  const { tokens } = await totpAccount(app)
  const token = tokens.accessToken
  const { passkey } = await addPasskey(app, token)
  t.equal((await sessionRow(token))!.aal, 'aal2', 'the TOTP confirmation raised the session')
  // a session the API cannot make: TOTP on, below aal2
  await rows(sql`update sessions set aal = 'aal1', amr = array['pwd'] where id = ${claims(token).sid as string}`)
  const options = await registrationOptions(app, (await register(app)).tokens.accessToken)
  const attempts: [string, () => ReturnType<typeof call>][] = [
    ['register options', () => call(app, 'POST', '/passkeys/register/options', token)],
    ['register', () => postRegistration(app, token, softAuthenticator().register(options, { origin: ORIGIN }))],
    ['list', () => call(app, 'GET', '/passkeys', token)],
    ['rename', () => rename(app, token, passkey.id, { name: 'x' })],
    ['delete', () => remove(app, token, passkey.id)],
  ]
  for (const [name, attempt] of attempts) {
    const res = await attempt()
    t.equal(assertProblem(t, res, 403, 'mfa_step_up_required').status, 403, name)
    t.equal(res.headers['cache-control'], 'no-store')
  }
  t.same((await passkeyRows(tokens.user.id)).map(r => [r.id, r.name]), [[passkey.id, 'Passkey']], 'nothing changed')
  t.equal((await me(app, token)).statusCode, 200, 'the rest of the API still serves the session')

  // an account without a second factor manages passkeys from an aal1 session (its registration)
  const { tokens: plain } = await register(app)
  t.equal((await sessionRow(plain.accessToken))!.aal, 'aal1')
  t.equal((await addPasskey(app, plain.accessToken)).res.statusCode, 201)
})

// --- signing in -------------------------------------------------------------------------------------

t.test('sign-in options: 200, a fresh sign-in challenge, empty allowCredentials, no account named', async t => {
  const app = await build(t)
  const res = await signInOptionsRes(app)
  t.equal(res.statusCode, 200, res.body)
  t.equal(res.headers['cache-control'], 'no-store')
  const options = res.json() as PublicKeyCredentialRequestOptionsJSON
  t.same(Object.keys(options).sort(), ['allowCredentials', 'challenge', 'rpId', 'timeout', 'userVerification'])
  t.same(options.allowCredentials, [])
  t.equal(options.userVerification, 'preferred')
  t.equal(options.rpId, 'localhost')
  t.equal(options.timeout, TTL)
  t.match(options.challenge, /^[A-Za-z0-9_-]{43,}$/)
  t.same(await challengeRows(options.challenge), [{ purpose: 'login', user_id: null }], 'a sign-in challenge, for nobody')
  t.not((await signInOptions(app)).challenge, options.challenge)
  // no body, an empty object, or a body naming an account: the same answer, naming nobody
  const { account } = await passkeyUser(app)
  const named = await app.inject({ method: 'POST', url: '/login/passkey/options', payload: {} })
  t.equal(named.statusCode, 200)
  t.same(Object.keys(named.json()).sort(), Object.keys(options).sort())
  t.notOk(named.body.includes(account.email))
})

t.test('sign-in with user verification: the token response of /login, aal2 hwk+user, lastUsedAt and the counter recorded', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock })
  const { tokens, authenticator, passkey } = await passkeyUser(app)
  const before = await sessionCount(tokens.user.id)
  clock.advance(60_000)
  const res = await passkeyLogin(app, await assertion(app, authenticator))
  t.equal(res.statusCode, 200, res.body)
  t.equal(res.headers['cache-control'], 'no-store')
  const body = res.json() as TokenBody
  t.same(Object.keys(body).sort(), TOKEN_KEYS)
  t.equal(body.tokenType, 'Bearer')
  t.same(body.user, tokens.user)
  t.equal(body.refreshExpiresIn, 43_200, 'not remembered')
  t.same(proof(body.accessToken), { aal: 'aal2', amr: ['hwk', 'user'] })
  t.equal(claims(body.accessToken).sub, tokens.user.id)
  t.same(await sessionRow(body.accessToken), { aal: 'aal2', amr: ['hwk', 'user'], remember_me: false })
  t.equal(await sessionCount(tokens.user.id), before + 1)
  t.same((await listPasskeys(app, body.accessToken))[0], { ...passkey, lastUsedAt: new Date(clock.now()).toISOString() }, 'lastUsedAt set')
  t.equal((await passkeyRows(tokens.user.id))[0]!.counter, 1)
  t.match(audits(app, 'login_success').at(-1), { userId: tokens.user.id, amr: ['hwk', 'user'] })

  // a refresh keeps what the sign-in proved
  const next = await refresh(app, body.refreshToken)
  t.equal(next.statusCode, 200)
  t.same(proof(next.json().accessToken), { aal: 'aal2', amr: ['hwk', 'user'] })

  // and again: the counter moves on
  clock.advance(60_000)
  t.equal((await passkeyLogin(app, await assertion(app, authenticator))).statusCode, 200)
  t.equal((await passkeyRows(tokens.user.id))[0]!.counter, 2)

  // an authenticator without a counter (always 0) signs in every time
  const { tokens: zero, authenticator: counterless } = await passkeyUser(app, 'Ed25519')
  for (let i = 0; i < 2; i++) t.equal((await passkeyLogin(app, await assertion(app, counterless, { counter: 0 }))).json().user.id, zero.user.id, `counter 0, time ${i + 1}`)
  t.equal((await passkeyRows(zero.user.id))[0]!.counter, 0)
})

t.test('sign-in without user verification: one factor, aal1 hwk; rememberMe honoured', async t => {
  const app = await build(t)
  const { tokens, authenticator } = await passkeyUser(app)
  const res = await passkeyLogin(app, await assertion(app, authenticator, { userVerified: false }))
  t.equal(res.statusCode, 200, res.body)
  const body = res.json() as TokenBody
  t.same(proof(body.accessToken), { aal: 'aal1', amr: ['hwk'] })
  t.same(await sessionRow(body.accessToken), { aal: 'aal1', amr: ['hwk'], remember_me: false })
  t.match(audits(app, 'login_success').at(-1), { userId: tokens.user.id, amr: ['hwk'] })

  const remembered = await passkeyLogin(app, await assertion(app, authenticator), { rememberMe: true })
  t.equal(remembered.statusCode, 200)
  t.equal(remembered.json().refreshExpiresIn, 2_592_000)
  t.same(await sessionRow(remembered.json().accessToken), { aal: 'aal2', amr: ['hwk', 'user'], remember_me: true })
  const forgotten = await passkeyLogin(app, await assertion(app, authenticator, { userVerified: false }), { rememberMe: false })
  t.equal(forgotten.json().refreshExpiresIn, 43_200)
  t.equal((await sessionRow(forgotten.json().accessToken))!.remember_me, false)
})

t.test('cookie mode: the refresh token only in the cookie; the cookie refreshes', async t => {
  const app = await build(t, { env: { CORS_ORIGINS: APP_ORIGIN } })
  const { authenticator } = await passkeyUser(app)
  const res = await passkeyLogin(app, await assertion(app, authenticator), {}, COOKIE)
  t.equal(res.statusCode, 200, res.body)
  t.same(Object.keys(res.json()).sort(), ['accessToken', 'expiresIn', 'tokenType', 'user'], 'no refreshToken in the body')
  const cookie = refreshCookie(res)!
  t.match(cookie.value, /^[A-Za-z0-9_-]{71}$/)
  t.same(cookie.attrs.sort(), ['httponly', 'path=/', 'samesite=strict', 'secure'])
  t.notOk(res.body.includes(cookie.value))
  t.same(proof(res.json().accessToken), { aal: 'aal2', amr: ['hwk', 'user'] })

  const refreshed = await app.inject({ method: 'POST', url: '/refresh', headers: { ...COOKIE, origin: APP_ORIGIN, cookie: `__Host-refresh=${cookie.value}` } })
  t.equal(refreshed.statusCode, 200, refreshed.body)
  t.same(proof(refreshed.json().accessToken), { aal: 'aal2', amr: ['hwk', 'user'] })

  const remembered = await passkeyLogin(app, await assertion(app, authenticator), { rememberMe: true }, COOKIE)
  t.ok(refreshCookie(remembered)!.attrs.includes('max-age=2592000'), 'persistent with rememberMe')
  const refused = await passkeyLogin(app, tamperSignature(await assertion(app, authenticator)), {}, COOKIE)
  assertProblem(t, refused, 401, 'invalid_credentials')
  t.notOk(refreshCookie(refused), 'no cookie for a refusal')
})

t.test('an account with TOTP: without user verification 403 mfa_required, finished by /login/mfa (hwk+otp); with it aal2 at once', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock, env: { CORS_ORIGINS: APP_ORIGIN } })
  const { account, tokens, secret } = await totpAccount(app)
  const authenticator = softAuthenticator()
  await addPasskey(app, tokens.accessToken, authenticator)
  const before = await sessionCount(tokens.user.id)

  const paused = await passkeyLogin(app, await assertion(app, authenticator, { userVerified: false }), { rememberMe: true })
  const body = assertProblem(t, paused, 403, 'mfa_required')
  t.match(body.mfaToken, /^[A-Za-z0-9_-]{43,}$/)
  t.same(body.methods, ['totp', 'recovery_code'])
  t.notOk('accessToken' in body || 'refreshToken' in body, 'no tokens')
  t.equal(paused.headers['cache-control'], 'no-store')
  t.equal(await sessionCount(tokens.user.id), before, 'no session')
  t.match(audits(app, 'login_mfa_required').at(-1), { method: 'passkey' })
  t.same(await rows(sql`select amr, remember_me from mfa_challenges where user_id = ${tokens.user.id}`), [{ amr: ['hwk'], remember_me: true }])

  clock.advance(STEP)
  const finished = await loginMfa(app, { mfaToken: body.mfaToken, code: totp(secret, clock.now()) })
  t.equal(finished.statusCode, 200, finished.body)
  const done = finished.json() as TokenBody
  t.same(Object.keys(done).sort(), TOKEN_KEYS)
  t.same(proof(done.accessToken), { aal: 'aal2', amr: ['hwk', 'otp'] })
  t.same(await sessionRow(done.accessToken), { aal: 'aal2', amr: ['hwk', 'otp'], remember_me: true }, 'rememberMe carried through')
  t.equal(done.refreshExpiresIn, 2_592_000)
  t.match(audits(app, 'login_success').at(-1), { userId: tokens.user.id, amr: ['hwk', 'otp'] })

  // in cookie mode the pause sets no cookie
  const pausedCookie = await passkeyLogin(app, await assertion(app, authenticator, { userVerified: false }), {}, COOKIE)
  assertProblem(t, pausedCookie, 403, 'mfa_required')
  t.notOk(pausedCookie.headers['set-cookie'])

  const direct = await passkeyLogin(app, await assertion(app, authenticator))
  t.equal(direct.statusCode, 200, direct.body)
  t.same(proof(direct.json().accessToken), { aal: 'aal2', amr: ['hwk', 'user'] }, 'user verification is the second factor')
  t.equal(await sessionCount(tokens.user.id), before + 2)

  // the password still asks for the code
  assertProblem(t, await login(app, { email: account.email, password: account.password }), 403, 'mfa_required')
})

t.test('sign-in refusals: 401 invalid_credentials, all alike, no session opened', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock })
  const { tokens, authenticator, passkey } = await passkeyUser(app)
  const { tokens: other, handle: otherHandle } = await passkeyUser(app)
  const { tokens: gone, authenticator: goneAuthenticator, passkey: gonePasskey } = await passkeyUser(app)
  t.equal((await remove(app, gone.accessToken, gonePasskey.id)).statusCode, 204)
  const users = [tokens.user.id, other.user.id, gone.user.id]
  const sessionsBefore = await Promise.all(users.map(sessionCount))

  const stranger = softAuthenticator()
  stranger.register({
    challenge: randomB64(32), rp: { id: 'localhost', name: 'Auth API' }, user: { id: randomB64(32), name: 'x', displayName: 'x' }, pubKeyCredParams: [{ type: 'public-key', alg: -7 }],
  }, { origin: ORIGIN })

  let accepted = 0
  const cases: [string, () => Promise<AuthenticationResponseJSON>][] = [
    ['an unknown credential (never registered)', () => assertion(app, stranger)],
    ['a bad signature', async () => tamperSignature(await assertion(app, authenticator))],
    ['signed by another key', async () => authenticator.resign(await assertion(app, authenticator), stranger.credential().privateKey)],
    ['another origin', async () => authenticator.withOrigin(await assertion(app, authenticator), EVIL)],
    ['another port', async () => assertion(app, authenticator, { origin: 'http://localhost:3001' })],
    ['another RP ID', () => assertion(app, authenticator, { rpId: 'evil.example' })],
    ['a challenge never issued', () => assertion(app, authenticator, { challenge: randomB64(32) })],
    ['a replayed assertion (its challenge used)', async () => {
      const response = await assertion(app, authenticator)
      t.equal((await passkeyLogin(app, response)).statusCode, 200, 'the first time')
      accepted = authenticator.credential().counter
      sessionsBefore[0]!++
      return response
    }],
    ['a used challenge, signed anew', async () => {
      const options = await signInOptions(app)
      t.equal((await passkeyLogin(app, authenticator.authenticate(options, { origin: ORIGIN }))).statusCode, 200)
      accepted = authenticator.credential().counter
      sessionsBefore[0]!++
      return authenticator.authenticate(options, { origin: ORIGIN })
    }],
    ['an expired challenge', async () => {
      const options = await signInOptions(app)
      clock.advance(TTL + 1_000)
      return authenticator.authenticate(options, { origin: ORIGIN })
    }],
    ['a registration challenge', async () => assertion(app, authenticator, { challenge: (await registrationOptions(app, tokens.accessToken)).challenge })],
    ['clientDataJSON of the wrong type (webauthn.create)', () => assertion(app, authenticator, { type: 'webauthn.create' })],
    ['clientDataJSON edited after signing', async () => editClientData(await assertion(app, authenticator), { crossOrigin: true })],
    ['from a cross-origin frame (re-signed)', async () => authenticator.resign(editClientData(await assertion(app, authenticator), { crossOrigin: true, topOrigin: EVIL }))],
    ['a deleted passkey', () => assertion(app, goneAuthenticator)],
    ['the user handle of another user', () => assertion(app, authenticator, { userHandle: otherHandle })],
    ['an empty user handle', () => assertion(app, authenticator, { userHandle: '' })],
    ['another credential id, the same signature', async () => { const r = await assertion(app, authenticator); return { ...r, id: passkey.id.replace(/-/g, ''), rawId: passkey.id.replace(/-/g, '') } }],
  ]
  const bodies: unknown[] = []
  for (const [name, make] of cases) {
    const response = await make()
    const res = await passkeyLogin(app, response)
    const body = assertProblem(t, res, 401, 'invalid_credentials')
    t.equal(body.detail, 'The passkey was not accepted', name)
    t.equal(res.headers['cache-control'], 'no-store')
    t.notOk(res.headers['set-cookie'])
    bodies.push(body)
    t.same(await Promise.all(users.map(sessionCount)), sessionsBefore, `${name}: no session opened`)
    const challenge = readClientData(response).challenge as string
    t.same(await challengeRows(challenge), [], `${name}: the challenge cannot be tried again`)
  }
  t.ok(bodies.every(b => JSON.stringify(b) === JSON.stringify(bodies[0])), 'every refusal looks the same')
  t.ok(accepted > 2)
  t.equal((await passkeyRows(tokens.user.id))[0]!.counter, accepted, 'the counter of the last accepted assertion: no refusal moved it')
  const failures = audits(app, 'login_failure').filter(l => l.method === 'passkey')
  t.equal(failures.length, cases.length)
  t.ok(failures.every(l => l.code === 'invalid_credentials'))
  t.equal(audits(app, 'passkey_clone_suspected').length, 0, 'none of these is a clone')

  // the genuine assertion still works after all that
  t.equal((await passkeyLogin(app, await assertion(app, authenticator))).statusCode, 200)
})

t.test('a signature counter that did not move forward: 401, a warning audit line passkey_clone_suspected; the genuine one goes on', async t => {
  const app = await build(t)
  const { tokens, authenticator, passkey } = await passkeyUser(app)
  const copy = authenticator.clone()
  t.equal((await passkeyLogin(app, await assertion(app, authenticator))).statusCode, 200, 'counter 1')
  t.equal((await passkeyLogin(app, await assertion(app, authenticator))).statusCode, 200, 'counter 2')
  const sessions = await sessionCount(tokens.user.id)

  const cases: [string, () => Promise<AuthenticationResponseJSON>][] = [
    ['a clone (counter 1 after 2)', () => assertion(app, copy)],
    ['the same counter again', () => assertion(app, authenticator, { counter: 2 })],
    ['a lower counter', () => assertion(app, authenticator, { counter: 1 })],
    ['counter 0 after 2', () => assertion(app, authenticator, { counter: 0 })],
  ]
  for (const [name, make] of cases) {
    const res = await passkeyLogin(app, await make())
    t.equal(assertProblem(t, res, 401, 'invalid_credentials').detail, 'The passkey was not accepted', name)
    t.equal(await sessionCount(tokens.user.id), sessions, `${name}: no session`)
  }
  const lines = audits(app, 'passkey_clone_suspected')
  t.equal(lines.length, cases.length)
  t.ok(lines.every(l => l.userId === tokens.user.id && l.passkeyId === passkey.id && l.level === 40), 'at warn level, naming the user and the passkey')
  t.equal((await passkeyRows(tokens.user.id))[0]!.counter, 2, 'the stored counter did not move')

  const genuine = await passkeyLogin(app, await assertion(app, authenticator))
  t.equal(genuine.statusCode, 200, 'the genuine authenticator, at 3')
  t.equal((await passkeyRows(tokens.user.id))[0]!.counter, 3)
  // a clone that jumps ahead is accepted once (a counter cannot tell), and then the genuine one is the suspect
  const ahead = await passkeyLogin(app, await assertion(app, copy, { counter: 10 }))
  t.equal(ahead.statusCode, 200)
  assertProblem(t, await passkeyLogin(app, await assertion(app, authenticator)), 401, 'invalid_credentials')
  t.equal(audits(app, 'passkey_clone_suspected').length, cases.length + 1)
})

t.test('/login/passkey shares the per-IP limit of /login', async t => {
  const app = await build(t, { env: { RATE_LIMIT_LOGIN_IP: '2' } })
  const { authenticator } = await passkeyUser(app)
  t.equal((await login(app, { email: 'limit@example.com', password: 'wrong password' })).statusCode, 401)
  assertProblem(t, await passkeyLogin(app, tamperSignature(await assertion(app, authenticator))), 401, 'invalid_credentials')
  const limited = await passkeyLogin(app, await assertion(app, authenticator))
  assertProblem(t, limited, 429, 'too_many_requests')
  t.ok(Number(limited.headers['retry-after']) > 0)
  assertProblem(t, await login(app, { email: 'limit@example.com', password: 'wrong password' }), 429, 'too_many_requests')
  t.equal((await signInOptionsRes(app)).statusCode, 200, 'the options are not counted with them')
  // another address is not affected
  const elsewhere = await app.inject({ method: 'POST', url: '/login/passkey', remoteAddress: '10.0.0.9', payload: { response: await assertion(app, authenticator) } })
  t.equal(elsewhere.statusCode, 200, elsewhere.body)

  // and the other way round
  const second = await build(t, { env: { RATE_LIMIT_LOGIN_IP: '2' } })
  for (let i = 0; i < 2; i++) t.equal((await passkeyLogin(second, await assertion(second, authenticator))).statusCode, 200)
  assertProblem(t, await login(second, { email: 'limit@example.com', password: 'wrong password' }), 429, 'too_many_requests')
})

t.test('deleting the last passkey is allowed; the password still signs in; the passkey does not', async t => {
  const app = await build(t)
  const { account, tokens, authenticator, passkey } = await passkeyUser(app)
  const res = await remove(app, tokens.accessToken, passkey.id)
  t.equal(res.statusCode, 204)
  t.same(await listPasskeys(app, tokens.accessToken), [])
  t.equal(await passkeyCount(app, tokens.accessToken), 0)
  t.same(await passkeyRows(tokens.user.id), [])
  const signedIn = await signIn(app, account)
  t.same(proof(signedIn.accessToken), { aal: 'aal1', amr: ['pwd'] })
  assertProblem(t, await passkeyLogin(app, await assertion(app, authenticator)), 401, 'invalid_credentials')
  // a new passkey can be added, with the same handle
  const handle = (await registrationOptions(app, tokens.accessToken)).user.id
  const again = await addPasskey(app, tokens.accessToken)
  t.equal(again.options.user.id, handle)
  t.equal(await passkeyCount(app, tokens.accessToken), 1)
})

// --- malformed bodies -------------------------------------------------------------------------------

function assertClientError (t: Test, name: string, res: { statusCode: number, headers: Record<string, unknown>, body: string }) {
  if (res.statusCode < 400 || res.statusCode >= 500) t.fail(`${name}: ${res.statusCode} ${res.body.slice(0, 300)}`)
  else if (!String(res.headers['content-type']).startsWith('application/problem+json')) t.fail(`${name}: ${String(res.headers['content-type'])}`)
  else t.pass(name)
}

/**
 * Variations of a response (as functions of a fresh one, so each meets a live challenge): its fields
 * removed, replaced by other types or random base64url, cut short; clientDataJSON that is not one.
 */
function mutations (sample: Record<string, unknown>): ((response: Record<string, unknown>) => unknown)[] {
  const junk: unknown[] = [null, 0, -1, 1e308, true, '', ' ', 'A', '====', '\u0000', '🙂', 'x'.repeat(5000), [], {}, ['a'], { a: 1 }]
  const inner = (r: Record<string, unknown>) => r.response as Record<string, unknown>
  const out: ((r: Record<string, unknown>) => unknown)[] = []
  for (const key of Object.keys(sample)) {
    out.push(r => { const { [key]: _, ...rest } = r; return rest })
    for (const value of junk) out.push(r => ({ ...r, [key]: value }))
  }
  for (const key of Object.keys(inner(sample))) {
    out.push(r => { const { [key]: _, ...rest } = inner(r); return { ...r, response: rest } })
    for (const value of junk) out.push(r => ({ ...r, response: { ...inner(r), [key]: value } }))
    if (typeof inner(sample)[key] === 'string') {
      out.push(r => { const text = inner(r)[key] as string; return { ...r, response: { ...inner(r), [key]: text.slice(0, Math.floor(text.length / 2)) } } })
      out.push(r => ({ ...r, response: { ...inner(r), [key]: `${inner(r)[key] as string}AAAA` } }))
      for (const n of [1, 16, 37, 64, 300]) out.push(r => ({ ...r, response: { ...inner(r), [key]: randomB64(n) } }))
    }
  }
  for (const clientData of [null, [], 'text', 42, {}, { challenge: {} }, { challenge: 'x'.repeat(2000) }, { type: 'webauthn.get' }, { challenge: '', origin: ORIGIN }, { challenge: null }]) {
    out.push(r => ({ ...r, response: { ...inner(r), clientDataJSON: b64Json(clientData) } }))
  }
  out.push(r => ({ ...r, response: { ...inner(r), clientDataJSON: b64Json({ ...readClientData(r as unknown as RegistrationResponseJSON), challenge: [readClientData(r as unknown as RegistrationResponseJSON).challenge] }) } }))
  out.push(r => ({ ...r, extra: { deep: { deeper: [1, 2, 3] } } }))
  return out
}

/** Never a 5xx; a refusal is a problem. Returns whether it was refused. */
function assertNo5xx (t: Test, name: string, res: { statusCode: number, headers: Record<string, unknown>, body: string }) {
  if (res.statusCode >= 500) t.fail(`${name}: ${res.statusCode} ${res.body.slice(0, 300)}`)
  else if (res.statusCode >= 400 && !String(res.headers['content-type']).startsWith('application/problem+json')) t.fail(`${name}: ${String(res.headers['content-type'])}`)
  return res.statusCode >= 400
}

t.test('malformed bodies of every passkey route: 4xx problems, never 5xx', async t => {
  const app = await build(t)
  const { tokens, authenticator, passkey } = await passkeyUser(app)
  const { authenticator: counterless } = await passkeyUser(app)
  const token = tokens.accessToken
  const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' }
  const json = { 'content-type': 'application/json' }
  const shapes: unknown[] = [null, [], 'text', 42, true, {}, { response: null }, { response: [] }, { response: 'x' }, { response: {} }, { name: 'x' }, { rememberMe: true }]
  const send = (method: 'POST' | 'PATCH' | 'DELETE', url: string, body: unknown, headers: Headers = auth) =>
    app.inject({ method, url, headers, payload: JSON.stringify(body) })

  for (const body of shapes) {
    assertClientError(t, `register ${JSON.stringify(body)}`, await send('POST', '/passkeys/register', body))
    assertClientError(t, `login/passkey ${JSON.stringify(body)}`, await send('POST', '/login/passkey', body, json))
  }

  // register: each variation on a fresh response to a live challenge of this user, so the checks past the challenge run too
  const registration = async () => softAuthenticator().register(await registrationOptions(app, token), { origin: ORIGIN }) as unknown as Record<string, unknown>
  let refused = 0
  const registerVariations = mutations(await registration())
  for (const [i, mutate] of registerVariations.entries()) {
    const body = { response: mutate(await registration()) }
    if (assertNo5xx(t, `register variation #${i} ${JSON.stringify(body).slice(0, 160)}`, await send('POST', '/passkeys/register', body))) refused++
  }
  t.ok(refused > registerVariations.length / 2, `register: ${refused} of ${registerVariations.length} variations refused (the rest still a valid response)`)
  for (const name of ['', 'x'.repeat(101), '\u0000', 'a\ud800', 42, null]) assertClientError(t, `register name ${JSON.stringify(name).slice(0, 20)}`, await send('POST', '/passkeys/register', { response: await registration(), name }))
  assertClientError(t, 'register with an extra member', await send('POST', '/passkeys/register', { response: await registration(), extra: 1 }))

  // sign-in: the same with a live sign-in challenge (a counterless passkey, so an accepted variation changes nothing)
  const signInResponse = async () => await assertion(app, counterless, { counter: 0 }) as unknown as Record<string, unknown>
  refused = 0
  const signInVariations = mutations(await signInResponse())
  for (const [i, mutate] of signInVariations.entries()) {
    const body = { response: mutate(await signInResponse()) }
    if (assertNo5xx(t, `login/passkey variation #${i} ${JSON.stringify(body).slice(0, 160)}`, await send('POST', '/login/passkey', body, json))) refused++
  }
  t.ok(refused > signInVariations.length / 2, `login/passkey: ${refused} of ${signInVariations.length} variations refused (the rest still a valid response)`)
  for (const rememberMe of ['yes', 1, null, {}]) assertClientError(t, `login/passkey rememberMe ${JSON.stringify(rememberMe)}`, await send('POST', '/login/passkey', { response: await signInResponse(), rememberMe }, json))
  assertClientError(t, 'login/passkey with an extra member', await send('POST', '/login/passkey', { response: await signInResponse(), extra: 1 }, json))

  // rename: names and ids
  const renameBodies: unknown[] = [null, [], 'text', 42, {}, { name: null }, { name: 1 }, { name: '' }, { name: ' ' }, { name: 'x'.repeat(101) }, { name: 'a\u0000b' }, { name: 'a\udc00b' }, { name: ['a'] }, { name: 'a', extra: 1 }]
  for (const [i, body] of renameBodies.entries()) assertClientError(t, `rename #${i} ${JSON.stringify(body)}`, await send('PATCH', `/passkeys/${passkey.id}`, body))
  const ids = ['x', '%00', encodeURIComponent('\u0000'), 'x'.repeat(5000), `${passkey.id}%20`, '..%2F..%2Fsessions', encodeURIComponent('🙂'), '00000000-0000-0000-0000-000000000000']
  for (const id of ids) {
    assertClientError(t, `rename /${id.slice(0, 40)}`, await send('PATCH', `/passkeys/${id}`, { name: 'x' }))
    assertClientError(t, `delete /${id.slice(0, 40)}`, await app.inject({ method: 'DELETE', url: `/passkeys/${id}`, headers: { authorization: auth.authorization } }))
  }

  // not JSON, not declared as JSON, too large
  for (const [method, url, headers] of [
    ['POST', '/passkeys/register/options', auth], ['POST', '/passkeys/register', auth], ['PATCH', `/passkeys/${passkey.id}`, auth],
    ['POST', '/login/passkey/options', json], ['POST', '/login/passkey', json],
  ] as const) {
    assertProblem(t, await app.inject({ method, url, headers, payload: '{"response": ' }), 400, 'validation_failed')
    const text = await app.inject({ method, url, headers: { ...headers, 'content-type': 'text/plain' }, payload: 'response=1' })
    t.equal(text.statusCode, 415, `${url} as text`)
    assertClientError(t, `${url} too large`, await app.inject({ method, url, headers, payload: JSON.stringify({ response: { id: 'x'.repeat(2_000_000) } }) }))
  }

  // the options routes take no body; whatever comes, never a 5xx
  for (const body of shapes) {
    for (const [url, headers] of [['/passkeys/register/options', auth], ['/login/passkey/options', json]] as const) {
      const res = await send('POST', url, body, headers)
      t.ok(res.statusCode === 200 || (res.statusCode >= 400 && res.statusCode < 500), `${url} ${JSON.stringify(body)}: ${res.statusCode}`)
    }
  }

  t.equal((await listPasskeys(app, token)).find(p => p.id === passkey.id)?.name, 'Passkey', 'the passkey was not renamed')
  t.notOk(app.logs.some(l => l.includes('"level":50')), 'nothing logged as an error')
  t.equal((await passkeyLogin(app, await assertion(app, authenticator))).statusCode, 200, 'the passkey still signs in')
})
