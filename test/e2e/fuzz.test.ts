import fc from 'fast-check'
import { sql } from 'drizzle-orm'
import t from 'tap'
import { PASSWORD_PROOF } from '../../src/auth/sign-in.js'
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server'
import { build, call, enableTotp, register, rows, totp, type TestApp } from '../helper.js'
import { editClientData, softAuthenticator, type SoftAlgorithm, type SoftAuthenticator } from '../webauthn-authenticator.js'

// Hostile input for every route: the answer is a documented success or a 4xx problem, never a 5xx,
// never a hang, and a refused request writes nothing. FUZZ_RUNS raises the count (npm run fuzz).
const RUNS = Number(process.env.FUZZ_RUNS ?? 1000)
const HANG_MS = 5000

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE'
/**
 * `{id}` in a url is replaced by hostile path segments; `as` sends a valid bearer token of that role half the
 * time (with `mfa`, of one of two accounts: one with TOTP on, one enrolling); `live` lists the live secrets
 * a body may carry (see LIVE).
 */
interface Route { method: Method, url: string, fields: string[], success: number[], as?: 'user' | 'admin', mfa?: true, live?: Live[], passkey?: PasskeyRoute }
/**
 * A passkey route: its account holds a passkey made with the software authenticator; `shaped` bodies are
 * answers to fresh options of that ceremony (then mutated, see SHAPED); `{id}` is often that passkey's id.
 */
interface PasskeyRoute { shaped?: 'register' | 'login', liveId?: true }

// Stand-ins a body may carry for a live secret, filled in as it is sent: an mfaToken of the account with
// TOTP on (used until spent or a few times over its five wrong codes), the code of the current step of
// the account's secret, its next unused recovery code (a spent one when none is left).
const LIVE = { mfaToken: '<live mfaToken>', code: '<live code>', recoveryCode: '<live recovery code>' } as const
type Live = keyof typeof LIVE
const MFA_TOKEN_USES = 8
const routes: Route[] = [
  { method: 'POST', url: '/register', fields: ['email', 'password', 'username', 'name', 'rememberMe'], success: [201] },
  { method: 'POST', url: '/login', fields: ['email', 'username', 'password', 'rememberMe'], success: [200] },
  { method: 'POST', url: '/refresh', fields: ['refreshToken'], success: [200] },
  { method: 'POST', url: '/logout', fields: ['refreshToken', 'scope'], success: [204] },
  { method: 'GET', url: '/me', fields: [], success: [200], as: 'user' },
  { method: 'PATCH', url: '/me', fields: ['name', 'username'], success: [200], as: 'user' },
  { method: 'POST', url: '/me/password', fields: ['currentPassword', 'newPassword'], success: [204], as: 'user' },
  { method: 'DELETE', url: '/me', fields: ['currentPassword'], success: [204], as: 'user' },
  { method: 'GET', url: '/sessions', fields: [], success: [200], as: 'user' },
  { method: 'DELETE', url: '/sessions/{id}', fields: [], success: [204], as: 'user' },
  { method: 'GET', url: '/admin/users', fields: [], success: [200], as: 'admin' },
  { method: 'POST', url: '/admin/users/{id}/revoke-sessions', fields: [], success: [204], as: 'admin' },
  { method: 'POST', url: '/password/forgot', fields: ['email'], success: [202] },
  { method: 'POST', url: '/password/reset', fields: ['token', 'newPassword'], success: [204] },
  { method: 'POST', url: '/email/verify', fields: ['token'], success: [204] },
  { method: 'POST', url: '/email/verify/resend', fields: [], success: [202], as: 'user' },
  { method: 'GET', url: '/health', fields: [], success: [200] },
  { method: 'GET', url: '/ready', fields: [], success: [200] },
  { method: 'GET', url: '/.well-known/jwks.json', fields: [], success: [200] },
  { method: 'POST', url: '/mfa/totp/enroll', fields: [], success: [200], as: 'user', mfa: true },
  { method: 'POST', url: '/mfa/totp/confirm', fields: ['code'], success: [200], as: 'user', mfa: true, live: ['code'] },
  { method: 'POST', url: '/mfa/recovery-codes', fields: ['code'], success: [200], as: 'user', mfa: true, live: ['code', 'recoveryCode'] },
  { method: 'DELETE', url: '/mfa/totp', fields: ['code'], success: [204], as: 'user', mfa: true, live: ['code', 'recoveryCode'] },
  { method: 'POST', url: '/login/mfa', fields: ['mfaToken', 'code', 'recoveryCode'], success: [200], live: ['mfaToken', 'code', 'recoveryCode'] },
  { method: 'DELETE', url: '/admin/users/{id}/mfa', fields: [], success: [204], as: 'admin' },
  { method: 'POST', url: '/passkeys/register/options', fields: [], success: [200], as: 'user', passkey: {} },
  { method: 'POST', url: '/passkeys/register', fields: ['response', 'name'], success: [201], as: 'user', passkey: { shaped: 'register' } },
  { method: 'GET', url: '/passkeys', fields: [], success: [200], as: 'user', passkey: {} },
  { method: 'PATCH', url: '/passkeys/{id}', fields: ['name'], success: [200], as: 'user', passkey: { liveId: true } },
  { method: 'DELETE', url: '/passkeys/{id}', fields: [], success: [204], as: 'user', passkey: { liveId: true } },
  { method: 'POST', url: '/login/passkey/options', fields: [], success: [200], passkey: {} },
  { method: 'POST', url: '/login/passkey', fields: ['response', 'rememberMe'], success: [200], passkey: { shaped: 'login' } },
]

// The file's time grows with FUZZ_RUNS and the routes: allow ~10 ms a request (a longer --timeout wins; 0 is none).
const configuredTimeout = Number(process.env.TAP_TIMEOUT ?? 30) * 1000
if (configuredTimeout > 0) t.setTimeout(Math.max(configuredTimeout, 60_000 + RUNS * routes.length * 10))

const printable = fc.stringMatching(/^[\x20-\x7e]{0,80}$/)
const oddUnicode = fc.constantFrom('\u0000', '\u202e', '\u200b', 'e\u0301', '\uFEFF', '\uD800', 'ﬁ', '𝒜', '\u{1F600}', 'İ', 'ß')
const weird = fc.oneof(fc.anything(), fc.string({ unit: 'grapheme', maxLength: 40 }), fc.array(oddUnicode, { maxLength: 20 }).map(a => a.join('')), fc.string({ maxLength: 2000 }))
const protoKeys = fc.constantFrom('__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'toString')

/** Bodies of the route's own fields, most often carrying live secrets where they belong: requests that get past validation. */
function liveShaped (route: Route) {
  const live = route.live!
  const anyLive = fc.constantFrom(...live.map(k => LIVE[k]))
  const own = (field: string) => live.includes(field as Live) ? fc.constant(LIVE[field as Live]) : anyLive
  return fc.record(Object.fromEntries(route.fields.map(field => [field, fc.oneof(
    { arbitrary: own(field), weight: 4 },
    { arbitrary: anyLive, weight: 1 },
    { arbitrary: weird, weight: 2 },
  )])), { requiredKeys: [] })
}

// Bodies shaped like real passkey answers: the software authenticator answers fresh options of the route's
// ceremony as it is sent (SHAPED marks the plan), then the answer is mutated: fields dropped, wrong types,
// garbage base64url, huge strings, clientDataJSON edited (re-signed or not), another origin, RP ID,
// counter or user handle. Unmutated (now and then) it is a real answer, and succeeds.
const SHAPED = '<shaped passkey answer>'
const RESPONSE_PATHS = [
  'id', 'rawId', 'type', 'response', 'clientExtensionResults', 'authenticatorAttachment',
  'response.clientDataJSON', 'response.attestationObject', 'response.authenticatorData', 'response.signature',
  'response.userHandle', 'response.transports', 'response.publicKey', 'response.publicKeyAlgorithm',
]
const base64url = fc.oneof(
  fc.stringMatching(/^[A-Za-z0-9_-]{0,300}={0,2}$/),
  fc.uint8Array({ maxLength: 600 }).map(b => Buffer.from(b).toString('base64url')),
  fc.anything().map(v => Buffer.from(JSON.stringify(v) ?? '').toString('base64url')),
  fc.uint8Array({ maxLength: 300 }).map(b => Buffer.from(b).toString('base64')),
  fc.constantFrom('', '=', '==', '-', '_', 'AA', 'A'),
)
const huge = fc.constantFrom(1401, 4097, 8193, 12_000, 15_500, 17_000).map(n => 'A'.repeat(n))
const garbage = fc.oneof(fc.anything(), base64url, huge, weird, fc.array(fc.oneof(oddUnicode, printable), { maxLength: 3 }), fc.constantFrom(null, true, 0, -1, 1e308, [], {}, [''], { a: 1 }))
const clientDataPatch = fc.dictionary(
  fc.constantFrom('type', 'challenge', 'origin', 'crossOrigin', 'topOrigin', 'tokenBinding', '__proto__'),
  fc.oneof(garbage, fc.constantFrom('webauthn.get', 'webauthn.create', 'http://localhost:3000', 'https://evil.example', 'null', '')),
  { minKeys: 1, maxKeys: 3 },
)
type Mutation =
  | { op: 'drop', path: string }
  | { op: 'set', path: string, value: unknown }
  | { op: 'flip', path: string, at: number }
  | { op: 'clientData', patch: Record<string, unknown>, resign: boolean }
  | { op: 'otherChallenge', resign: boolean }
  | { op: 'extra', key: string, value: unknown }
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('drop' as const), path: fc.constantFrom(...RESPONSE_PATHS) }),
  { arbitrary: fc.record({ op: fc.constant('set' as const), path: fc.constantFrom(...RESPONSE_PATHS), value: garbage }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constant('flip' as const), path: fc.constantFrom(...RESPONSE_PATHS), at: fc.nat() }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constant('clientData' as const), patch: clientDataPatch, resign: fc.boolean() }), weight: 2 },
  fc.record({ op: fc.constant('otherChallenge' as const), resign: fc.boolean() }),
  fc.record({ op: fc.constant('extra' as const), key: fc.oneof(protoKeys, fc.string({ maxLength: 10 })), value: garbage }),
)
interface Shape {
  mutations: Mutation[]
  /** where the authenticator thinks it is */
  origin?: string
  rpId?: string
  userVerified: boolean
  backedUp: boolean
  algorithm: SoftAlgorithm
  /** sign-in only: the signature counter (else one more than the last) and the user handle sent */
  counter?: number
  userHandle?: string | null
  /** the other field of the body: name, or rememberMe */
  other?: unknown
}
// mostly left as a real answer has it, so that the mutations are what is refused
const seldom = <T>(arbitrary: fc.Arbitrary<T>) => fc.oneof({ arbitrary: fc.constant(undefined), weight: 3 }, { arbitrary, weight: 1 })
const shape: fc.Arbitrary<Shape> = fc.record({
  mutations: fc.oneof({ arbitrary: fc.constant<Mutation[]>([]), weight: 1 }, { arbitrary: fc.array(mutation, { minLength: 1, maxLength: 3 }), weight: 5 }),
  origin: seldom(fc.oneof(fc.constantFrom('https://evil.example', 'http://localhost', 'http://localhost:3001', 'null'), printable)),
  rpId: seldom(fc.oneof(fc.constantFrom('evil.example', 'example.com', ''), printable)),
  userVerified: fc.boolean(),
  backedUp: fc.boolean(),
  algorithm: fc.constantFrom<SoftAlgorithm>('ES256', 'Ed25519'),
  counter: seldom(fc.oneof(fc.constant(0), fc.nat({ max: 5 }), fc.constant(2 ** 32 - 1))),
  userHandle: seldom(fc.oneof(fc.constant(null), base64url)),
  other: seldom(fc.oneof(weird, fc.constantFrom('Phone', true, false))),
}, { noNullPrototype: true })

function bodies (route: Route) {
  const key = route.fields.length ? fc.oneof(fc.constantFrom(...route.fields), protoKeys, fc.string({ maxLength: 10 })) : fc.oneof(protoKeys, fc.string({ maxLength: 10 }))
  const json = fc.oneof(
    fc.dictionary(key, weird, { maxKeys: 6 }),
    fc.anything(),
    fc.letrec(tie => ({ deep: fc.oneof({ depthSize: 'large' }, fc.constant(1), fc.array(tie('deep'), { maxLength: 2 }), fc.dictionary(fc.string({ maxLength: 3 }), tie('deep'), { maxKeys: 2 })) })).deep,
  ).map(v => JSON.stringify(v) ?? '')
  const raw = fc.oneof(
    json,
    json.map(s => s.replace(/^\{/, '{"__proto__":{"polluted":1},')),
    fc.uint8Array({ maxLength: 64 }).map(b => Buffer.concat([Buffer.from('{"email":"'), Buffer.from(b), Buffer.from([0xff, 0xfe]), Buffer.from('"}')])),
    fc.integer({ min: 1, max: 5000 }).map(n => '['.repeat(n) + ']'.repeat(n)),
    fc.integer({ min: 16_000, max: 20_000 }).map(n => `{"name":"${'x'.repeat(n)}"}`),
    printable,
    // as often as all the rest: bodies that get past validation to the checks of codes and tokens
    ...(route.live ? [{ arbitrary: liveShaped(route).map(v => JSON.stringify(v)), weight: 6 }] : []),
    // and for a passkey ceremony, answers of the authenticator, mutated
    ...(route.passkey?.shaped ? [{ arbitrary: shape.map(v => SHAPED + JSON.stringify(v)), weight: 12 }] : []),
    // a new name, for the passkey's id
    ...(route.passkey?.liveId && route.fields.includes('name') ? [{ arbitrary: fc.record({ name: fc.oneof(printable, weird) }).map(v => JSON.stringify(v)), weight: 3 }] : []),
  )
  return raw
}

const contentType = fc.option(fc.oneof(fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/problem+json'), printable), { nil: undefined })
// a route with live secrets (or passkey answers) mostly gets JSON, so that its bodies reach the checks of codes and tokens
const mostlyJson = (route: Route) => !!route.live || !!route.passkey?.shaped || !!route.passkey?.liveId
const headers = (route: Route) => fc.record({
  'content-type': mostlyJson(route) ? fc.oneof({ arbitrary: fc.constant('application/json'), weight: 3 }, { arbitrary: contentType, weight: 1 }) : contentType,
  authorization: fc.option(fc.oneof(printable, printable.map(s => `Bearer ${s}`), fc.constant('Bearer eyJhbGciOiJub25lIn0.e30.')), { nil: undefined }),
  cookie: fc.option(fc.oneof(printable, printable.map(s => `__Host-refresh=${s}`), printable.map(s => `refresh=${s}`)), { nil: undefined }),
  'x-auth-mode': fc.option(fc.constantFrom('cookie', 'body', 'COOKIE', ''), { nil: undefined }),
}, { requiredKeys: mostlyJson(route) ? ['content-type'] : [] })

// odd characters in the query too (but a lone surrogate, which cannot be percent-encoded)
const query = fc.option(fc.oneof(
  fc.string({ maxLength: 30 }).map(s => `?${encodeURIComponent(s)}=${encodeURIComponent(s)}`),
  fc.tuple(fc.constantFrom('limit', 'cursor', 'email'), fc.oneof(printable, fc.integer().map(String), fc.uuid(), oddUnicode.filter(s => s !== '\uD800'))).map(([k, v]) => `?${k}=${encodeURIComponent(v)}`),
), { nil: '' })
const pathSegment = fc.oneof(fc.uuid(), printable.map(encodeURIComponent), fc.string({ maxLength: 300 }).map(encodeURIComponent), fc.constantFrom('%zz', '%00', '..', '%2F'))
// the id of the account's passkey, as listed or in capitals, filled in as it is sent
const LIVE_PASSKEY_ID = '<live passkey id>'
const LIVE_PASSKEY_ID_UPPER = '<LIVE PASSKEY ID>'
const segments = (route: Route) => route.passkey?.liveId
  ? fc.oneof({ arbitrary: pathSegment, weight: 2 }, { arbitrary: fc.constantFrom(LIVE_PASSKEY_ID, LIVE_PASSKEY_ID_UPPER), weight: 1 })
  : pathSegment

async function counts () {
  const [row] = await rows<{ users: number, sessions: number, rotations: number, revoked: number }>(sql`
    select (select count(*)::int from users) as users, (select count(*)::int from sessions) as sessions,
           (select coalesce(sum(refresh_counter), 0)::int from sessions) as rotations,
           (select count(*)::int from sessions where revoked_at is not null) as revoked`)
  return row!
}

/** The second factors of every account, to show that a refused request spent or changed none. */
async function factors () {
  return JSON.stringify(await rows(sql`select user_id, secret, confirmed_at, last_step, recovery_codes from totp_factors order by user_id`))
}

/** Every passkey as stored, to show that a refused request added, changed or removed none. */
async function passkeyRows () {
  return JSON.stringify(await rows(sql`select id, user_id, credential_id, public_key, counter::text as counter, transports, backed_up, device_type, name, last_used_at from passkeys order by id`))
}

interface PasskeyAccount { token: string, authenticator: SoftAuthenticator, origin: string }

/** Adds a passkey of the software authenticator to the account, as a browser would. */
async function addPasskey (app: TestApp, account: PasskeyAccount) {
  const options = await call(app, 'POST', '/passkeys/register/options', account.token)
  const added = await call(app, 'POST', '/passkeys/register', account.token, { response: account.authenticator.register(options.json(), { origin: account.origin }) })
  if (added.statusCode !== 201) throw new Error(`could not add a passkey: ${added.statusCode} ${added.body}`)
  return added.json().id as string
}

function setPath (target: Record<string, unknown>, path: string, change: (parent: Record<string, unknown>, key: string) => void) {
  const keys = path.split('.')
  let parent: unknown = target
  for (const key of keys.slice(0, -1)) parent = (parent as Record<string, unknown>)[key]
  if (parent !== null && typeof parent === 'object' && !Array.isArray(parent)) change(parent as Record<string, unknown>, keys.at(-1)!)
}

/** Builds the body a SHAPED plan describes: a fresh answer of the authenticator to new options, mutated. */
async function shapedBody (app: TestApp, kind: 'register' | 'login', account: PasskeyAccount, plan: Shape): Promise<string> {
  const origin = plan.origin ?? account.origin
  const registrationOptions = async () => (await call(app, 'POST', '/passkeys/register/options', account.token)).json()
  const signInOptions = async () => (await app.inject({ method: 'POST', url: '/login/passkey/options' })).json()
  let response: RegistrationResponseJSON | AuthenticationResponseJSON
  if (kind === 'register') {
    // a new authenticator each time: the account's passkeys are in excludeCredentials
    response = softAuthenticator({ algorithm: plan.algorithm }).register(await registrationOptions(), {
      origin, ...(plan.rpId !== undefined ? { rpId: plan.rpId } : {}), userVerified: plan.userVerified, backedUp: plan.backedUp,
    })
  } else {
    response = account.authenticator.authenticate(await signInOptions(), {
      origin,
      ...(plan.rpId !== undefined ? { rpId: plan.rpId } : {}),
      ...(plan.counter !== undefined ? { counter: plan.counter } : {}),
      ...(plan.userHandle !== undefined ? { userHandle: plan.userHandle } : {}),
      userVerified: plan.userVerified,
    })
  }
  const resign = (r: typeof response) => kind === 'login' ? account.authenticator.resign(r as AuthenticationResponseJSON) : r
  let extra: Record<string, unknown> = {}
  for (const m of plan.mutations) {
    try {
      switch (m.op) {
        case 'drop': setPath(response as never, m.path, (p, k) => { delete p[k] }); break
        case 'set': setPath(response as never, m.path, (p, k) => { p[k] = m.value }); break
        case 'flip': setPath(response as never, m.path, (p, k) => {
          const v = p[k]
          if (typeof v !== 'string' || v.length === 0) return
          const at = m.at % v.length
          p[k] = v.slice(0, at) + (v[at] === 'A' ? 'B' : 'A') + v.slice(at + 1)
        }); break
        case 'clientData': {
          const edited = editClientData(response, m.patch)
          response = m.resign ? resign(edited) : edited
          break
        }
        case 'otherChallenge': {
          const other = kind === 'register' ? await signInOptions() : await registrationOptions()
          const edited = editClientData(response, { challenge: other.challenge })
          response = m.resign ? resign(edited) : edited
          break
        }
        case 'extra': extra = { ...extra, [m.key]: m.value }; break
      }
    } catch {
      // a mutation that cannot apply to what earlier ones left (clientDataJSON no longer readable, a missing key): skipped
    }
  }
  const other = plan.other === undefined ? {} : kind === 'register' ? { name: plan.other } : { rememberMe: plan.other }
  return JSON.stringify({ response, ...other, ...extra })
}

interface Account { token: string, userId: string, secret: string, recoveryCodes: string[], spent: string[] }

/** The fuzzed accounts of an MFA route: one with TOTP on, one enrolling (a pending secret). */
async function mfaAccounts (app: TestApp, enrolling: { accessToken: string, user: { id: string } }) {
  const enrolled = await call(app, 'POST', '/mfa/totp/enroll', enrolling.accessToken)
  if (enrolled.statusCode !== 200) throw new Error(`enroll failed: ${enrolled.statusCode} ${enrolled.body}`)
  const pending: Account = { token: enrolling.accessToken, userId: enrolling.user.id, secret: enrolled.json().secret, recoveryCodes: [], spent: [] }
  const { tokens } = await register(app)
  const on: Account = { token: tokens.accessToken, userId: tokens.user.id, ...await enableTotp(app, tokens.accessToken), spent: [] }
  return { pending, on }
}

/** Writes the live secrets into a body: `account`'s code and recovery code, an mfaToken of the account with TOTP on. */
function liveFiller (app: TestApp, on: Account) {
  let mfaToken: { token: string, uses: number } | undefined
  return {
    async fill (payload: string | Buffer, account: Account) {
      if (typeof payload !== 'string' || !payload.includes('<live ')) return payload
      let body = payload
      if (body.includes(LIVE.mfaToken)) {
        if (!mfaToken || mfaToken.uses >= MFA_TOKEN_USES) mfaToken = { token: (await app.mfa.challenge(on.userId, PASSWORD_PROOF, false)).mfaToken, uses: 0 }
        mfaToken.uses++
        body = body.replaceAll(LIVE.mfaToken, mfaToken.token)
      }
      if (body.includes(LIVE.code)) body = body.replaceAll(LIVE.code, totp(account.secret, app.clock()))
      if (body.includes(LIVE.recoveryCode)) {
        const code = account.recoveryCodes.shift() ?? account.spent[0] ?? 'none-left'
        account.spent.push(code)
        body = body.replaceAll(LIVE.recoveryCode, code)
      }
      return body
    },
    /** The token was spent by a sign-in: the next one is new. */
    spent () { mfaToken = undefined },
  }
}

async function send (app: TestApp, route: Route, payload: string | Buffer, hdrs: Record<string, string | undefined>, q: string, segment: string) {
  const clean = Object.fromEntries(Object.entries(hdrs).filter(([, v]) => v !== undefined)) as Record<string, string>
  const url = `${route.url.replace('{id}', segment)}${q}`
  const request = app.inject({ method: route.method, url, headers: clean, ...(route.method !== 'GET' && payload.length ? { payload } : {}) })
  let timer: NodeJS.Timeout | undefined
  const hang = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`no answer within ${HANG_MS} ms`)), HANG_MS) })
  try {
    return await Promise.race([request, hang])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Puts the accounts back as they were after a request that succeeded with a live secret: new recovery
 * codes kept, TOTP turned on again after it was turned off, the enrolling account enrolling again.
 */
async function afterSuccess (app: TestApp, route: Route, account: Account, body: string, live: ReturnType<typeof liveFiller>) {
  if (route.url === '/login/mfa') live.spent()
  if (route.url === '/mfa/recovery-codes') account.recoveryCodes = JSON.parse(body).recoveryCodes
  if (route.url === '/mfa/totp') Object.assign(account, await enableTotp(app, account.token), { spent: [] })
  if (route.url === '/mfa/totp/confirm') {
    const [code] = JSON.parse(body).recoveryCodes as string[]
    const off = await call(app, 'DELETE', '/mfa/totp', account.token, { code })
    const enrolled = await call(app, 'POST', '/mfa/totp/enroll', account.token)
    if (off.statusCode !== 204 || enrolled.statusCode !== 200) throw new Error(`could not enrol again: ${off.statusCode} ${enrolled.statusCode}`)
    account.secret = enrolled.json().secret
  }
}

// Found by the shaped answers on Postgres, which stores no NUL character: a challenge that is no base64url is
// not looked up, and transports that WebAuthn does not name are not kept.
t.test('passkey answers carrying what Postgres cannot store are refused or cleaned, never a 5xx', async t => {
  const app = await build(t)
  const { tokens } = await register(app)
  const keys: PasskeyAccount = { token: tokens.accessToken, authenticator: softAuthenticator(), origin: app.config.webauthn.origins[0]! }
  const registrationOptions = async () => (await call(app, 'POST', '/passkeys/register/options', keys.token)).json()
  const signInOptions = async () => (await app.inject({ method: 'POST', url: '/login/passkey/options' })).json()
  await addPasskey(app, keys)
  for (const challenge of ['\u0000', 'a\u0000b', '\uD800', 'é', 'a b', 'x'.repeat(1025)]) {
    const registered = await call(app, 'POST', '/passkeys/register', keys.token, { response: editClientData(softAuthenticator().register(await registrationOptions(), { origin: keys.origin }), { challenge }) })
    t.equal(registered.statusCode, 400, `registration, challenge ${JSON.stringify(challenge.slice(0, 8))}`)
    t.equal(registered.json().code, 'passkey_invalid')
    const signedIn = await app.inject({ method: 'POST', url: '/login/passkey', payload: { response: keys.authenticator.resign(editClientData(keys.authenticator.authenticate(await signInOptions(), { origin: keys.origin }), { challenge })) } })
    t.equal(signedIn.statusCode, 401, `sign-in, challenge ${JSON.stringify(challenge.slice(0, 8))}`)
    t.equal(signedIn.json().code, 'invalid_credentials')
  }
  const answer = softAuthenticator().register(await registrationOptions(), { origin: keys.origin })
  const added = await call(app, 'POST', '/passkeys/register', keys.token, { response: { ...answer, response: { ...answer.response, transports: ['usb\u0000', 'made-up', 'hybrid', 'internal'] } } })
  t.equal(added.statusCode, 201, 'odd transports do not stop a registration')
  const [row] = await rows<{ transports: string[] }>(sql`select transports from passkeys where id = ${added.json().id}::uuid`)
  t.same(row!.transports, ['hybrid', 'internal'], 'only the transports WebAuthn names are kept')
})

for (const route of routes) {
  t.test(`${route.method} ${route.url}: ${RUNS} hostile requests`, async t => {
    const app = await build(t)
    // a live account, so tokens and cookies have something real to collide with
    const { tokens } = await register(app)
    if (route.as === 'admin') await rows(sql`update users set role = 'admin' where id = ${tokens.user.id}`)
    const valid = `Bearer ${tokens.accessToken}`
    const accounts = route.mfa || route.live ? await mfaAccounts(app, tokens) : undefined
    const live = accounts && liveFiller(app, accounts.on)
    const before = await counts()
    // the second factors as the last success left them: a refused request changes none
    let factorsKnown = accounts && await factors()
    let successes = 0
    // a passkey route: the live account holds a passkey of the software authenticator
    const keys: PasskeyAccount | undefined = route.passkey && { token: tokens.accessToken, authenticator: softAuthenticator(), origin: app.config.webauthn.origins[0]! }
    let passkeyId = keys && await addPasskey(app, keys)
    let passkeysKnown = await passkeyRows()
    const passkeysAtStart = passkeysKnown
    await fc.assert(fc.asyncProperty(bodies(route), headers(route), query, segments(route), fc.boolean(), fc.boolean(), async (raw, hdrs, q, rawSegment, signedIn, withTotp) => {
      // the account with TOTP on, or (with its token) the one enrolling
      const account = accounts && (withTotp || !route.mfa ? accounts.on : accounts.pending)
      let payload = live ? await live.fill(raw, account!) : raw
      // a shaped answer goes as JSON and, to a managing route, signed in: its content is what is refused
      const shaped = keys && typeof payload === 'string' && payload.startsWith(SHAPED)
      if (shaped) payload = await shapedBody(app, route.passkey!.shaped!, keys, JSON.parse((payload as string).slice(SHAPED.length)))
      if (shaped) { hdrs = { ...hdrs, 'content-type': 'application/json' }; signedIn = true }
      const segment = rawSegment === LIVE_PASSKEY_ID ? passkeyId! : rawSegment === LIVE_PASSKEY_ID_UPPER ? passkeyId!.toUpperCase() : rawSegment
      const authorization = account ? `Bearer ${account.token}` : valid
      const res = await send(app, route, payload, route.as && signedIn ? { ...hdrs, authorization } : hdrs, q, segment)
      if (route.success.includes(res.statusCode)) {
        successes++
        if (account) {
          await afterSuccess(app, route, account, res.body, live!)
          factorsKnown = await factors()
        }
        if (keys) {
          // the passkey deleted: another for the next requests; a sign-in with a counter of its own: the authenticator goes on from it
          if (route.url === '/passkeys/{id}' && route.method === 'DELETE') passkeyId = await addPasskey(app, keys)
          if (route.url === '/login/passkey') {
            const [row] = await rows<{ counter: string }>(sql`select counter::text as counter from passkeys where id = ${passkeyId}::uuid`)
            keys.authenticator.credential().counter = Number(row!.counter)
          }
          passkeysKnown = await passkeyRows()
        }
        return
      }
      if (res.statusCode < 400 || res.statusCode >= 500) throw new Error(`${res.statusCode}: ${res.body.slice(0, 300)}`)
      if (!String(res.headers['content-type']).startsWith('application/problem+json')) throw new Error(`not a problem: ${res.headers['content-type']}`)
      const body = JSON.parse(res.body)
      if (typeof body.code !== 'string' || body.status !== res.statusCode) throw new Error(`bad problem body: ${res.body}`)
      if (accounts && await factors() !== factorsKnown) throw new Error(`a refused request (${res.statusCode} ${body.code}) changed the second factors`)
      if (await passkeyRows() !== passkeysKnown) throw new Error(`a refused request (${res.statusCode} ${body.code}) changed the passkeys`)
    }), { numRuns: RUNS })
    const after = await counts()
    // writes happen only on documented successes (a register or login is one session; logout may end one)
    if (route.url === '/register') {
      t.equal(after.users - before.users, successes, 'one user per 201')
    } else {
      t.equal(after.users, before.users, 'no user written')
    }
    if (route.url === '/login/mfa' || route.url === '/login/passkey') {
      t.equal(after.sessions - before.sessions, successes, 'one session per 200')
    } else if (!['/register', '/login'].includes(route.url)) {
      t.equal(after.sessions, before.sessions, 'no session written')
    }
    if (route.url !== '/refresh' && route.url !== '/logout') t.equal(after.revoked, before.revoked, 'nothing revoked')
    const passkeysChanged = route.url === '/passkeys/register' || route.url === '/passkeys/{id}' || route.url === '/login/passkey'
    if (!passkeysChanged || successes === 0) t.equal(await passkeyRows(), passkeysAtStart, 'no passkey added, changed or removed')
    if (route.passkey?.shaped) t.ok(successes > 0, 'some shaped answers were real ones, and succeeded')
    if (route.as) t.equal((await app.inject({ url: '/me', headers: { authorization: valid } })).statusCode, 200, 'the account is still signed in')
    if (accounts) t.equal((await app.inject({ url: '/me', headers: { authorization: `Bearer ${accounts.on.token}` } })).statusCode, 200, 'the account with TOTP on is still signed in')
    t.ok(true, `${RUNS} requests, ${successes} documented successes, no 5xx, no hang`)
  })
}
