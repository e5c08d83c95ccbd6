import fc from 'fast-check'
import { sql } from 'drizzle-orm'
import t from 'tap'
import { NO_SOURCE } from '../../src/auth/security-events.js'
import { PASSWORD_PROOF } from '../../src/auth/sign-in.js'
import { emailTokenFor } from '../../src/mail/tokens.js'
import type { AuthenticationResponseJSON, RegistrationResponseJSON } from '@simplewebauthn/server'
import { build, call, enableTotp, logout, register, registerAdmin, rows, testKey, totp, type TestApp } from '../helper.js'
import { authorize, callback, callbackFor, flow, MOBILE, oidcEnv, person, pkce, signInWith, WEB } from '../oidc-flow.js'
import { startTestProvider, type TestProvider } from '../oidc-provider.js'
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
interface Route { method: Method, url: string, fields: string[], success: number[], as?: 'user' | 'admin', mfa?: true, live?: Live[], passkey?: PasskeyRoute, oidc?: OidcRoute, lifecycle?: LifecycleRoute }
/**
 * A passkey route: its account holds a passkey made with the software authenticator; `shaped` bodies are
 * answers to fresh options of that ceremony (then mutated, see SHAPED); `{id}` is often that passkey's id.
 */
interface PasskeyRoute { shaped?: 'register' | 'login', liveId?: true }
/**
 * A route of signing in with an identity provider (the test provider, configured as "test" and "second"):
 * `query` and `body` are fuzzed mostly with valid or live values (see OIDC_LIVE); `{id}` is often a provider's
 * id, or (`id: 'identity'`) an identity of the account or of an account it is the last way into. With a token,
 * half the time it is that account's: one made through the provider, with no password.
 */
interface OidcRoute { query?: 'authorize' | 'callback', body?: 'token' | 'link', id: 'provider' | 'identity' | 'none' }
/**
 * A route of the account's lifecycle (change of email, suspension): `body` is fuzzed mostly with valid or live
 * values (see LIFECYCLE_LIVE); with `target`, `{id}` is often another account's id (as listed or in capitals)
 * or the admin's own. A confirmation's bearer token, when sent, is half the time that of the link's account.
 */
interface LifecycleRoute { body?: 'emailChange' | 'confirm' | 'suspension', target?: true }

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
  { method: 'GET', url: '/oauth/providers', fields: [], success: [200], oidc: { id: 'none' } },
  { method: 'GET', url: '/oauth/{id}/authorize', fields: [], success: [302], oidc: { query: 'authorize', id: 'provider' } },
  { method: 'GET', url: '/oauth/{id}/callback', fields: [], success: [302], oidc: { query: 'callback', id: 'provider' } },
  { method: 'POST', url: '/oauth/token', fields: ['code', 'codeVerifier', 'rememberMe'], success: [200], oidc: { body: 'token', id: 'none' } },
  { method: 'POST', url: '/me/identities/{id}', fields: ['redirectUri', 'codeChallenge', 'state'], success: [200], as: 'user', oidc: { body: 'link', id: 'provider' } },
  { method: 'GET', url: '/me/identities', fields: [], success: [200], as: 'user', oidc: { id: 'none' } },
  { method: 'DELETE', url: '/me/identities/{id}', fields: [], success: [204], as: 'user', oidc: { id: 'identity' } },
  { method: 'POST', url: '/me/email', fields: ['newEmail', 'currentPassword'], success: [202], as: 'user', lifecycle: { body: 'emailChange' } },
  { method: 'POST', url: '/email/change/confirm', fields: ['token'], success: [204], as: 'user', lifecycle: { body: 'confirm' } },
  { method: 'POST', url: '/admin/users/{id}/suspend', fields: ['until', 'reason'], success: [204], as: 'admin', lifecycle: { body: 'suspension', target: true } },
  { method: 'DELETE', url: '/admin/users/{id}/suspend', fields: [], success: [204], as: 'admin', lifecycle: { target: true } },
  { method: 'GET', url: '/me/security-events', fields: [], success: [200], as: 'user' },
  { method: 'GET', url: '/admin/audit-events', fields: [], success: [200], as: 'admin' },
]

// The file's time grows with FUZZ_RUNS and the routes: allow ~25 ms a request (a busy machine takes twice the usual) (a longer --timeout wins; 0 is none).
const configuredTimeout = Number(process.env.TAP_TIMEOUT ?? 30) * 1000
if (configuredTimeout > 0) t.setTimeout(Math.max(configuredTimeout, 60_000 + RUNS * routes.length * 25))

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

// Signing in with an identity provider: the test provider runs in this process (started by the first route
// that needs it), configured twice, as "test" and as "second" (a state of another provider). Stand-ins a
// query, body or path may carry, filled in as it is sent: the state of a new flow (of "test", of "second",
// or one already spent), the provider's issuer, a one-time code of a whole sign-in and its verifier, the
// account's identity (as listed or in capitals) and the identity that is another account's last way in.
const APP_URIS = [WEB, MOBILE]
const OIDC_LIVE = {
  state: '~live-state~',
  secondState: '~second-state~',
  spentState: '~spent-state~',
  issuer: '~issuer~',
  oauthCode: '~live-oauth-code~',
  codeVerifier: '~live-code-verifier~',
  identity: '~live-identity~',
  identityUpper: '~LIVE-IDENTITY~',
  lastIdentity: '~last-identity~',
} as const
// the problems the callback's redirect may name (error=…)
const CALLBACK_ERRORS = ['email_taken', 'identity_taken', 'provider_denied', 'provider_error', 'id_token_invalid', 'provider_email_missing', 'provider_unavailable']

interface IdentityProvider { provider: TestProvider, env: Record<string, string>, authorizationEndpoint: string }
let identityProvider: Promise<IdentityProvider> | undefined
const startIdentityProvider = () => (identityProvider ??= (async () => {
  const provider = await startTestProvider({ redirectUris: [callbackFor('test'), callbackFor('second')] })
  t.teardown(() => provider.stop())
  const env = oidcEnv({ test: provider, second: provider })
  const discovery = await (await fetch(`${provider.issuer}/.well-known/openid-configuration`)).json() as { authorization_endpoint: string }
  return { provider, env, authorizationEndpoint: discovery.authorization_endpoint }
})())

const often = <T>(good: fc.Arbitrary<T>, ...bad: fc.Arbitrary<unknown>[]) =>
  fc.oneof({ arbitrary: good as fc.Arbitrary<unknown>, weight: 4 }, ...bad.map(arbitrary => ({ arbitrary, weight: 1 })))
const allowedUri = fc.constantFrom(...APP_URIS)
// almost an allowed redirect URI: they are compared exactly
const nearUri = fc.constantFrom(
  'https://app.example.com/oauth/callback/', 'https://app.example.com/oauth/callback?x=1', 'https://app.example.com/oauth/callback#x',
  'HTTPS://APP.EXAMPLE.COM/oauth/callback', 'https://app.example.com.evil.example/oauth/callback', 'https://app.example.com@evil.example/oauth/callback',
  'https://app.example.com/oauth/callback\u0000', ' https://app.example.com/oauth/callback', 'com.example.app:/oauth/', 'com.example.app://oauth',
  'javascript:alert(1)', 'http://localhost:3000/demo/', '//app.example.com/oauth/callback', '',
)
const challenge = fc.uint8Array({ minLength: 32, maxLength: 32 }).map(b => Buffer.from(b).toString('base64url'))
const verifierShaped = fc.stringMatching(/^[A-Za-z0-9._~-]{43,128}$/)

// a query as a client (or an attacker) writes one: odd values, keys twice, bare keys, bad escapes
const queryValue = (v: unknown) => {
  const text = typeof v === 'string' ? v : JSON.stringify(v) ?? ''
  try {
    return encodeURIComponent(text)
  } catch {
    return '%ED%A0%80' // a lone surrogate, as its UTF-8 would be
  }
}
const queryTail = fc.oneof(
  { arbitrary: fc.constant(''), weight: 10 },
  fc.constantFrom('&', '&&', '&=', '&%zz=1', '&state', '&code=', '&code_challenge_method=plain', '&redirect_uri=https%3A%2F%2Fevil.example%2F', '&state=a&state=b', '&iss=https%3A%2F%2Fevil.example'),
)
// every field, as a client sends them, or (now and then) only some
const fields = <T extends Record<string, fc.Arbitrary<unknown>>>(model: T) =>
  fc.oneof({ arbitrary: fc.record(model), weight: 3 }, { arbitrary: fc.record(model, { requiredKeys: [] }), weight: 1 }) as fc.Arbitrary<Record<string, unknown>>
const toQuery = ([params, tail]: [Record<string, unknown>, string]) => {
  const text = Object.entries(params).map(([k, v]) => `${queryValue(k)}=${queryValue(v)}`).join('&') + tail
  return text ? `?${text}` : ''
}

const authorizeQuery = fc.tuple(fields({
  redirect_uri: often(allowedUri, nearUri, weird),
  code_challenge: often(challenge, base64url, weird),
  code_challenge_method: often(fc.constant('S256'), fc.constantFrom('plain', 's256', 'S256 ', ''), weird),
  state: fc.oneof(printable, weird, huge),
}), queryTail).map(toQuery)

// The provider's real answer to a new flow, then mutated (SHAPED_CALLBACK marks the plan): keys dropped, set,
// flipped or sent twice, the state of another provider's flow, of a spent flow or of another flow (whose
// code this is not), sent to another provider's callback. Unmutated (now and then) it signs in, and succeeds.
const SHAPED_CALLBACK = '~shaped callback~'
const ANSWER_KEYS = ['code', 'state', 'iss'] as const
type CallbackMutation =
  | { op: 'drop', key: typeof ANSWER_KEYS[number] }
  | { op: 'set', key: string, value: unknown }
  | { op: 'flip', key: typeof ANSWER_KEYS[number], at: number }
  | { op: 'twice', key: typeof ANSWER_KEYS[number] }
  | { op: 'state', of: 'second' | 'spent' | 'fresh' }
interface CallbackShape { mutations: CallbackMutation[], provider?: string }
const answerKey = fc.constantFrom(...ANSWER_KEYS)
const callbackMutation: fc.Arbitrary<CallbackMutation> = fc.oneof(
  fc.record({ op: fc.constant('drop' as const), key: answerKey }),
  { arbitrary: fc.record({ op: fc.constant('set' as const), key: fc.oneof(answerKey, fc.constantFrom('error', 'error_description', 'session_state', '__proto__')), value: fc.oneof(weird, printable, fc.constantFrom('access_denied', 'server_error', 'https://evil.example', '')) }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constant('flip' as const), key: answerKey, at: fc.nat() }), weight: 2 },
  fc.record({ op: fc.constant('twice' as const), key: answerKey }),
  fc.record({ op: fc.constant('state' as const), of: fc.constantFrom('second' as const, 'spent' as const, 'fresh' as const) }),
)
const callbackShape: fc.Arbitrary<CallbackShape> = fc.record({
  mutations: fc.oneof({ arbitrary: fc.constant<CallbackMutation[]>([]), weight: 1 }, { arbitrary: fc.array(callbackMutation, { minLength: 1, maxLength: 3 }), weight: 4 }),
  provider: fc.oneof({ arbitrary: fc.constant(undefined), weight: 6 }, { arbitrary: fc.constantFrom('second', 'TEST', 'none'), weight: 1 }),
}, { requiredKeys: ['mutations'] })

const callbackQuery = fc.oneof(
  fc.tuple(fc.record({
    code: fc.oneof(printable, base64url, weird),
    state: often(fc.constantFrom(OIDC_LIVE.state, OIDC_LIVE.secondState, OIDC_LIVE.spentState), printable, weird),
    error: fc.oneof(fc.constantFrom('access_denied', 'server_error', 'login_required', 'temporarily_unavailable'), weird),
    error_description: weird,
    iss: fc.oneof(fc.constant(OIDC_LIVE.issuer), printable, weird),
  }, { requiredKeys: [] }), queryTail).map(toQuery),
  { arbitrary: callbackShape.map(v => SHAPED_CALLBACK + JSON.stringify(v)), weight: 2 },
)
const oidcQueries = { authorize: authorizeQuery, callback: callbackQuery }

// the route's own fields (OIDC_BODY marks them): sent as JSON and, to a route of the account, signed in
const OIDC_BODY = '~oidc body~'
const oidcBodies = {
  token: fields({
    code: often(fc.constant(OIDC_LIVE.oauthCode), printable, weird),
    codeVerifier: often(fc.constant(OIDC_LIVE.codeVerifier), verifierShaped, weird),
    rememberMe: fc.oneof(fc.boolean(), weird),
  }),
  link: fields({
    redirectUri: often(allowedUri, nearUri, weird),
    codeChallenge: often(challenge, base64url, weird),
    state: fc.oneof(printable, weird),
  }),
}

// The account's lifecycle: stand-ins a body or path may carry, filled in as it is sent: the account's password,
// an address nobody has, another account's, the account's own; a link to change the email of a third account
// (the link's account) that works, one a newer request voided, one spent, one whose address another account
// took meanwhile; the other account's id (as listed or in capitals) and the admin's own.
const LIFECYCLE_LIVE = {
  password: '~password~',
  freeEmail: '~free-email~',
  takenEmail: '~taken-email~',
  ownEmail: '~own-email~',
  changeToken: '~change-token~',
  voidedToken: '~voided-token~',
  spentToken: '~spent-token~',
  takenToken: '~taken-token~',
  target: '~target~',
  targetUpper: '~TARGET~',
  self: '~self~',
} as const
const LIFECYCLE_BODY = '~lifecycle body~'
const emailToken = fc.stringMatching(/^[A-Za-z0-9_-]{43}$/)
// an ISO time as a client writes one: in the past or the future, any offset, a fraction of any length
const isoTime = fc.tuple(
  fc.date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }),
  fc.constantFrom('Z', 'z', '+00:00', '-00:00', '+23:59', '-23:59', '+05:30'),
  fc.nat({ max: 9 }),
  fc.boolean(),
).map(([d, zone, digits, lowerT]) => {
  const [date, time] = d.toISOString().slice(0, 19).split('T')
  return `${date}${lowerT ? 't' : 'T'}${time}${digits ? `.${String(d.getTime()).padStart(digits, '0').slice(-digits)}` : ''}${zone}`
})
const soon = fc.integer({ min: 60_000, max: 10 * 365 * 86_400_000 }).map(ms => new Date(Date.now() + ms).toISOString())
// a time that only leap seconds have (and RFC 3339 allows)
const leapSecond = fc.constantFrom('2030-06-30T23:59:60Z', '2030-12-31T23:59:60Z', '2031-01-01T00:59:60+01:00')
const lifecycleBodies = {
  emailChange: fields({
    newEmail: often(fc.constantFrom(LIFECYCLE_LIVE.freeEmail, LIFECYCLE_LIVE.freeEmail, LIFECYCLE_LIVE.takenEmail, LIFECYCLE_LIVE.ownEmail), printable, weird),
    currentPassword: often(fc.constant(LIFECYCLE_LIVE.password), printable, weird),
  }),
  confirm: fields({
    token: often(fc.constantFrom(LIFECYCLE_LIVE.changeToken, LIFECYCLE_LIVE.voidedToken, LIFECYCLE_LIVE.spentToken, LIFECYCLE_LIVE.takenToken), emailToken, weird),
  }),
  suspension: fields({
    until: often(fc.oneof(soon, isoTime), leapSecond, printable, weird),
    reason: fc.oneof(printable, weird, huge, fc.constantFrom('', '   ', 'Reported for abuse')),
  }),
}

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
    // and for an identity provider's route, its own fields, mostly valid or live
    ...(route.oidc?.body ? [{ arbitrary: oidcBodies[route.oidc.body].map(v => OIDC_BODY + JSON.stringify(v)), weight: 6 }] : []),
    // and for the account's lifecycle, its own fields, mostly valid or live
    ...(route.lifecycle?.body ? [{ arbitrary: lifecycleBodies[route.lifecycle.body].map(v => LIFECYCLE_BODY + JSON.stringify(v)), weight: 6 }] : []),
  )
  return raw
}

const contentType = fc.option(fc.oneof(fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/problem+json'), printable), { nil: undefined })
// a route with live secrets (or passkey answers) mostly gets JSON, so that its bodies reach the checks of codes and tokens
const mostlyJson = (route: Route) => !!route.live || !!route.passkey?.shaped || !!route.passkey?.liveId || !!route.oidc?.body || route.oidc?.id === 'identity' || !!route.lifecycle
const headers = (route: Route) => fc.record({
  'content-type': mostlyJson(route) ? fc.oneof({ arbitrary: fc.constant('application/json'), weight: 3 }, { arbitrary: contentType, weight: 1 }) : contentType,
  authorization: fc.option(fc.oneof(printable, printable.map(s => `Bearer ${s}`), fc.constant('Bearer eyJhbGciOiJub25lIn0.e30.')), { nil: undefined }),
  cookie: fc.option(fc.oneof(printable, printable.map(s => `__Host-refresh=${s}`), printable.map(s => `refresh=${s}`)), { nil: undefined }),
  'x-auth-mode': fc.option(fc.constantFrom('cookie', 'body', 'COOKIE', ''), { nil: undefined }),
}, { requiredKeys: mostlyJson(route) ? ['content-type'] : [] })

// odd characters in the query too (but a lone surrogate, which cannot be percent-encoded)
const query = fc.option(fc.oneof(
  fc.string({ maxLength: 30 }).map(s => `?${encodeURIComponent(s)}=${encodeURIComponent(s)}`),
  fc.tuple(fc.constantFrom('limit', 'cursor', 'email', 'userId', 'type'), fc.oneof(printable, fc.integer().map(String), fc.uuid(), oddUnicode.filter(s => s !== '\uD800'))).map(([k, v]) => `?${k}=${encodeURIComponent(v)}`),
), { nil: '' })
const pathSegment = fc.oneof(fc.uuid(), printable.map(encodeURIComponent), fc.string({ maxLength: 300 }).map(encodeURIComponent), fc.constantFrom('%zz', '%00', '..', '%2F'))
// the id of the account's passkey, as listed or in capitals, filled in as it is sent
const LIVE_PASSKEY_ID = '<live passkey id>'
const LIVE_PASSKEY_ID_UPPER = '<LIVE PASSKEY ID>'
const segments = (route: Route) => {
  if (route.passkey?.liveId) return fc.oneof({ arbitrary: pathSegment, weight: 2 }, { arbitrary: fc.constantFrom(LIVE_PASSKEY_ID, LIVE_PASSKEY_ID_UPPER), weight: 1 })
  if (route.oidc?.id === 'provider') return fc.oneof({ arbitrary: pathSegment, weight: 1 }, { arbitrary: fc.constantFrom('test', 'test', 'second', 'TEST', 'test%00', 'tes%74'), weight: 3 })
  if (route.oidc?.id === 'identity') return fc.oneof({ arbitrary: pathSegment, weight: 2 }, { arbitrary: fc.constantFrom(OIDC_LIVE.identity, OIDC_LIVE.identityUpper, OIDC_LIVE.lastIdentity), weight: 3 })
  if (route.lifecycle?.target) return fc.oneof({ arbitrary: pathSegment, weight: 2 }, { arbitrary: fc.constantFrom(LIFECYCLE_LIVE.target, LIFECYCLE_LIVE.targetUpper, LIFECYCLE_LIVE.self), weight: 3 })
  return pathSegment
}

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

/**
 * The accounts of an identity provider's route: the fuzzed one, linked to a person at the provider (who signs
 * in there from then on), and one made through the provider, with no password.
 */
interface OidcAccounts { sub: string, identityId: string, passwordless: { token: string, identityId: string } }

/** Links the account of `token` to `sub` at the provider (POST /me/identities/test, the provider's pages, the callback): the identity's id. */
async function linkIdentity (app: TestApp, provider: TestProvider, token: string, sub: string): Promise<string> {
  const started = await call(app, 'POST', '/me/identities/test', token, { redirectUri: WEB, codeChallenge: pkce().challenge })
  if (started.statusCode !== 200) throw new Error(`could not start a link: ${started.statusCode} ${started.body}`)
  provider.signInAs = sub
  const res = await callback(app, await provider.follow(started.json().authorizeUrl))
  if (new URL(String(res.headers.location)).searchParams.get('linked') !== 'test') throw new Error(`not linked: ${res.statusCode} ${res.headers.location}`)
  const { identities } = (await call(app, 'GET', '/me/identities', token)).json() as { identities: { id: string }[] }
  return identities.at(-1)!.id
}

async function oidcAccounts (app: TestApp, { provider }: IdentityProvider, token: string): Promise<OidcAccounts> {
  // a sign-up through the provider: an account whose identity is its only way in
  const { tokens } = await signInWith(app, provider, person(provider).sub)
  const [made] = (await call(app, 'GET', '/me/identities', tokens.accessToken)).json().identities as { id: string }[]
  const { sub } = person(provider)
  return { sub, identityId: await linkIdentity(app, provider, token, sub), passwordless: { token: tokens.accessToken, identityId: made!.id } }
}

async function newState (app: TestApp, providerId: string) {
  const res = await authorize(app, providerId)
  if (res.statusCode !== 302) throw new Error(`could not start a flow: ${res.statusCode} ${res.body}`)
  return new URL(String(res.headers.location)).searchParams.get('state')!
}

/** The state of a flow that is over: the provider sent the user back cancelled. */
async function spentState (app: TestApp) {
  const state = await newState(app, 'test')
  const res = await app.inject({ url: `/oauth/test/callback?error=access_denied&state=${state}` })
  if (res.statusCode !== 302) throw new Error(`could not spend a state: ${res.statusCode} ${res.body}`)
  return state
}

/** Writes the stand-ins of OIDC_LIVE into a query, a body or a path segment. */
async function fillOidc (app: TestApp, idp: IdentityProvider, accounts: OidcAccounts, text: string): Promise<string> {
  if (!text.includes('~')) return text
  let out = text
  const fill = async (standIn: string, value: () => Promise<string> | string) => { if (out.includes(standIn)) out = out.replaceAll(standIn, await value()) }
  await fill(OIDC_LIVE.state, () => newState(app, 'test'))
  await fill(OIDC_LIVE.secondState, () => newState(app, 'second'))
  await fill(OIDC_LIVE.spentState, () => spentState(app))
  await fill(OIDC_LIVE.issuer, () => idp.provider.issuer)
  if (out.includes(OIDC_LIVE.oauthCode) || out.includes(OIDC_LIVE.codeVerifier)) {
    const { location, verifier } = await flow(app, idp.provider, accounts.sub)
    const code = location.searchParams.get('code')
    if (!code) throw new Error(`no code: ${location.href}`)
    out = out.replaceAll(OIDC_LIVE.oauthCode, code).replaceAll(OIDC_LIVE.codeVerifier, verifier)
  }
  await fill(OIDC_LIVE.identity, () => accounts.identityId)
  await fill(OIDC_LIVE.identityUpper, () => accounts.identityId.toUpperCase())
  await fill(OIDC_LIVE.lastIdentity, () => accounts.passwordless.identityId)
  return out
}

/** Builds the callback a SHAPED_CALLBACK plan describes: the provider's answer to a new flow, mutated. */
async function shapedCallback (app: TestApp, idp: IdentityProvider, accounts: OidcAccounts, plan: CallbackShape) {
  const start = await authorize(app, 'test')
  if (start.statusCode !== 302) throw new Error(`could not start a flow: ${start.statusCode} ${start.body}`)
  idp.provider.signInAs = accounts.sub
  const back = await idp.provider.follow(String(start.headers.location))
  let params: [string, unknown][] = [...back.searchParams]
  const set = (key: string, value: unknown) => { params = [...params.filter(([k]) => k !== key), [key, value]] }
  for (const m of plan.mutations) {
    switch (m.op) {
      case 'drop': params = params.filter(([k]) => k !== m.key); break
      case 'set': set(m.key, m.value); break
      case 'flip': params = params.map(([k, v]) => {
        if (k !== m.key || typeof v !== 'string' || v.length === 0) return [k, v]
        const at = m.at % v.length
        return [k, v.slice(0, at) + (v[at] === 'A' ? 'B' : 'A') + v.slice(at + 1)]
      }); break
      case 'twice': params = [...params, ...params.filter(([k]) => k === m.key)]; break
      case 'state': set('state', m.of === 'spent' ? await spentState(app) : await newState(app, m.of === 'second' ? 'second' : 'test')); break
    }
  }
  return {
    query: `?${params.map(([k, v]) => `${queryValue(k)}=${queryValue(v)}`).join('&')}`,
    segment: plan.provider ?? 'test',
    providerCode: back.searchParams.get('code'),
  }
}

/** Identities as stored, and how many flows and one-time codes wait: a refused request links, unlinks or starts none. */
async function oidcRows () {
  const [row] = await rows<{ identities: string, flows: number, codes: number }>(sql`
    select (select coalesce(json_agg(json_build_object('id', id, 'user', user_id, 'provider', provider, 'subject', subject, 'email', email) order by id), '[]')::text from identities) as identities,
           (select count(*)::int from oauth_flows) as flows, (select count(*)::int from oauth_codes) as codes`)
  return row!
}

/**
 * What every answer of an identity provider's route must be, success or not: a redirect goes only to the
 * provider's authorization endpoint (authorize) or to an allowed redirect URI with a code or a known error
 * (callback), a link's URL is the provider's, and no code (the provider's, or ours) reaches a log line.
 * Whether the answer is a success, as the route counts them (a callback's redirect with an error is a refusal).
 */
function checkOidcAnswer (idp: IdentityProvider, route: Route, res: { statusCode: number, headers: Record<string, unknown>, body: string }, logs: string[], providerCode: string | null) {
  const location = typeof res.headers.location === 'string' ? res.headers.location : undefined
  const secrets = [providerCode]
  if (res.statusCode === 302 && route.url === '/oauth/{id}/authorize' && !location?.startsWith(`${idp.authorizationEndpoint}?`)) {
    throw new Error(`authorize redirected elsewhere than the provider: ${location}`)
  }
  let refused = false
  if (res.statusCode === 302 && route.url === '/oauth/{id}/callback') {
    if (!APP_URIS.some(uri => location?.startsWith(`${uri}?`))) throw new Error(`the callback redirected elsewhere than an allowed redirect URI: ${location}`)
    const answer = new URL(location!).searchParams
    secrets.push(answer.get('code'))
    if (answer.has('error') && !CALLBACK_ERRORS.includes(answer.get('error')!)) throw new Error(`the callback's redirect names no known problem: ${location}`)
    refused = !answer.has('code')
  }
  if (res.statusCode === 200 && route.url === '/me/identities/{id}' && !String(JSON.parse(res.body).authorizeUrl).startsWith(`${idp.authorizationEndpoint}?`)) {
    throw new Error(`a link's authorizeUrl is not the provider's: ${res.body}`)
  }
  for (const secret of secrets) if (secret && logs.some(line => line.includes(secret))) throw new Error('a code reached a log line')
  return !refused && route.success.includes(res.statusCode)
}

/**
 * The accounts of a lifecycle route besides the fuzzed one: another (a suspension's target, the owner of a
 * taken address) and the link's account, whose email a confirmation changes. The link's account is signed
 * out: its token is still well formed, and a confirmation has no session of it left to end.
 */
interface LifecycleAccounts {
  userId: string
  email: string
  password: string
  other: { id: string, email: string }
  linked: { id: string, password: string, token: string }
}

async function lifecycleAccounts (app: TestApp, route: Route, fuzzed: Awaited<ReturnType<typeof register>>): Promise<LifecycleAccounts> {
  const other = await register(app)
  const linked = await register(app)
  const out = await logout(app, { refreshToken: linked.tokens.refreshToken })
  if (out.statusCode !== 204) throw new Error(`could not sign out: ${out.statusCode} ${out.body}`)
  const accounts = {
    userId: fuzzed.tokens.user.id,
    email: fuzzed.body.email.toLowerCase(),
    password: fuzzed.body.password,
    other: { id: other.tokens.user.id, email: other.body.email.toLowerCase() },
    linked: { id: linked.tokens.user.id, password: linked.body.password, token: linked.tokens.accessToken },
  }
  // lifting a suspension: there is one to lift
  if (route.url === '/admin/users/{id}/suspend' && route.method === 'DELETE') await suspendOther(app, accounts)
  return accounts
}

const suspendOther = (app: TestApp, accounts: LifecycleAccounts) => app.accounts.suspend(accounts.other.id, {}, { ...NO_SOURCE, actorId: accounts.userId })

let freshEmails = 0
const freshEmail = () => `fresh${++freshEmails}x${process.pid}@example.com`

/** A link to change the email of the link's account to `address`, as the email carries it. */
async function changeLink (app: TestApp, { linked }: LifecycleAccounts, address = freshEmail()) {
  await app.accounts.requestEmailChange({ userId: linked.id, signedInAt: new Date(app.clock()) }, { newEmail: address, currentPassword: linked.password }, NO_SOURCE)
  const [row] = await rows<{ id: string }>(sql`select id from email_tokens where user_id = ${linked.id} and purpose = 'email_change' and new_email = ${address}`)
  return emailTokenFor(testKey().mailSecret, row!.id)
}

/** Writes the stand-ins of LIFECYCLE_LIVE into a body or a path segment. */
async function fillLifecycle (app: TestApp, accounts: LifecycleAccounts, text: string): Promise<string> {
  if (!text.includes('~')) return text
  let out = text
  const fill = async (standIn: string, value: () => Promise<string> | string) => { if (out.includes(standIn)) out = out.replaceAll(standIn, await value()) }
  await fill(LIFECYCLE_LIVE.password, () => accounts.password)
  await fill(LIFECYCLE_LIVE.freeEmail, freshEmail)
  await fill(LIFECYCLE_LIVE.takenEmail, () => accounts.other.email)
  await fill(LIFECYCLE_LIVE.ownEmail, () => accounts.email)
  await fill(LIFECYCLE_LIVE.changeToken, () => changeLink(app, accounts))
  await fill(LIFECYCLE_LIVE.voidedToken, async () => {
    const older = await changeLink(app, accounts)
    await changeLink(app, accounts)
    return older
  })
  await fill(LIFECYCLE_LIVE.spentToken, async () => {
    const token = await changeLink(app, accounts)
    const res = await app.inject({ method: 'POST', url: '/email/change/confirm', payload: { token } })
    if (res.statusCode !== 204) throw new Error(`could not follow a link: ${res.statusCode} ${res.body}`)
    return token
  })
  await fill(LIFECYCLE_LIVE.takenToken, async () => {
    const address = freshEmail()
    const token = await changeLink(app, accounts, address)
    // another account takes the address before the link is followed
    await rows(sql`update users set email = ${address} where id = ${accounts.other.id}`)
    accounts.other.email = address
    return token
  })
  await fill(LIFECYCLE_LIVE.target, () => accounts.other.id)
  await fill(LIFECYCLE_LIVE.targetUpper, () => accounts.other.id.toUpperCase())
  await fill(LIFECYCLE_LIVE.self, () => accounts.userId)
  return out
}

/** The accounts' emails and suspensions, the links, the outbox and the ended sessions: a refused request changes none. */
async function lifecycleRows () {
  return JSON.stringify(await rows(sql`
    select (select coalesce(json_agg(json_build_object('id', id, 'email', email, 'verified', email_verified_at, 'suspendedAt', suspended_at,
              'until', suspended_until, 'reason', suspended_reason, 'updatedAt', updated_at) order by id), '[]') from users)::text as users,
           (select coalesce(json_agg(json_build_object('id', id, 'usedAt', used_at) order by id), '[]') from email_tokens)::text as links,
           (select count(*)::int from outbox) as outbox,
           (select count(*)::int from sessions where revoked_at is not null) as revoked`))
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
    const idp = route.oidc && await startIdentityProvider()
    const app = await build(t, idp ? { env: idp.env } : {})
    // a live account, so tokens and cookies have something real to collide with
    const fuzzed = route.as === 'admin' ? await registerAdmin(app) : await register(app)
    const { tokens } = fuzzed
    const valid = `Bearer ${tokens.accessToken}`
    const accounts = route.mfa || route.live ? await mfaAccounts(app, tokens) : undefined
    const live = accounts && liveFiller(app, accounts.on)
    // an identity provider's route: the live account has an identity, another account only one
    const oidc = idp && await oidcAccounts(app, idp, tokens.accessToken)
    const lifecycle = route.lifecycle && await lifecycleAccounts(app, route, fuzzed)
    let logsChecked = app.logs.length
    const before = await counts()
    // the second factors as the last success left them: a refused request changes none
    let factorsKnown = accounts && await factors()
    let successes = 0
    // a passkey route: the live account holds a passkey of the software authenticator
    const keys: PasskeyAccount | undefined = route.passkey && { token: tokens.accessToken, authenticator: softAuthenticator(), origin: app.config.webauthn.origins[0]! }
    let passkeyId = keys && await addPasskey(app, keys)
    let passkeysKnown = await passkeyRows()
    const passkeysAtStart = passkeysKnown
    const queries = route.oidc?.query ? oidcQueries[route.oidc.query] : query
    await fc.assert(fc.asyncProperty(bodies(route), headers(route), queries, segments(route), fc.boolean(), fc.boolean(), fc.boolean(), async (raw, hdrs, q, rawSegment, signedIn, withTotp, otherAccount) => {
      // the account with TOTP on, or (with its token) the one enrolling
      const account = accounts && (withTotp || !route.mfa ? accounts.on : accounts.pending)
      let payload = live ? await live.fill(raw, account!) : raw
      // a shaped answer goes as JSON and, to a managing route, signed in: its content is what is refused
      const shaped = keys && typeof payload === 'string' && payload.startsWith(SHAPED)
      if (shaped) payload = await shapedBody(app, route.passkey!.shaped!, keys, JSON.parse((payload as string).slice(SHAPED.length)))
      if (shaped) { hdrs = { ...hdrs, 'content-type': 'application/json' }; signedIn = true }
      let segment = rawSegment === LIVE_PASSKEY_ID ? passkeyId! : rawSegment === LIVE_PASSKEY_ID_UPPER ? passkeyId!.toUpperCase() : rawSegment
      let providerCode: string | null = null
      if (oidc) {
        if (typeof payload === 'string' && payload.startsWith(OIDC_BODY)) {
          payload = payload.slice(OIDC_BODY.length)
          hdrs = { ...hdrs, 'content-type': 'application/json' }
          signedIn = true
        }
        if (typeof payload === 'string') payload = await fillOidc(app, idp, oidc, payload)
        if (q.startsWith(SHAPED_CALLBACK)) ({ query: q, segment, providerCode } = await shapedCallback(app, idp, oidc, JSON.parse(q.slice(SHAPED_CALLBACK.length))))
        else q = await fillOidc(app, idp, oidc, q)
        segment = await fillOidc(app, idp, oidc, segment)
      }
      if (lifecycle) {
        if (typeof payload === 'string' && payload.startsWith(LIFECYCLE_BODY)) {
          payload = payload.slice(LIFECYCLE_BODY.length)
          hdrs = { ...hdrs, 'content-type': 'application/json' }
          // a confirmation needs no bearer token: whether it has one stays as drawn
          if (route.url !== '/email/change/confirm') signedIn = true
        }
        if (typeof payload === 'string') payload = await fillLifecycle(app, lifecycle, payload)
        segment = await fillLifecycle(app, lifecycle, segment)
      }
      const oidcKnown = oidc && await oidcRows()
      const lifecycleKnown = lifecycle && await lifecycleRows()
      // the other account: of an identity provider's route, the one without a password; of a confirmation, the link's
      const authorization = oidc && otherAccount
        ? `Bearer ${oidc.passwordless.token}`
        : account ? `Bearer ${account.token}` : lifecycle && otherAccount && route.url === '/email/change/confirm' ? `Bearer ${lifecycle.linked.token}` : valid
      const res = await send(app, route, payload, route.as && signedIn ? { ...hdrs, authorization } : hdrs, q, segment)
      const succeeded = idp ? checkOidcAnswer(idp, route, res, app.logs.slice(logsChecked), providerCode) : route.success.includes(res.statusCode)
      logsChecked = app.logs.length
      if (succeeded) {
        successes++
        if (oidc && route.url === '/me/identities/{id}' && route.method === 'DELETE') {
          if (otherAccount && signedIn) throw new Error('an identity of the account without a password was unlinked')
          // unlinked: linked again for the next requests
          oidc.identityId = await linkIdentity(app, idp.provider, tokens.accessToken, oidc.sub)
        }
        // lifted: suspended again, so that the next request has a suspension to lift
        if (lifecycle && route.url === '/admin/users/{id}/suspend' && route.method === 'DELETE') await suspendOther(app, lifecycle)
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
      if (oidcKnown) {
        const now = await oidcRows()
        if (now.identities !== oidcKnown.identities || now.flows > oidcKnown.flows || now.codes > oidcKnown.codes) {
          throw new Error(`a refused request (${res.statusCode} ${res.headers.location ?? res.body.slice(0, 100)}) linked, unlinked, started a flow or made a code`)
        }
      }
      // the callback's refusals after the state is known: a redirect to the app with error=
      if (res.statusCode === 302 && route.url === '/oauth/{id}/callback') return
      if (res.statusCode < 400 || res.statusCode >= 500) throw new Error(`${res.statusCode}: ${res.body.slice(0, 300)}`)
      if (!String(res.headers['content-type']).startsWith('application/problem+json')) throw new Error(`not a problem: ${res.headers['content-type']}`)
      const body = JSON.parse(res.body)
      if (typeof body.code !== 'string' || body.status !== res.statusCode) throw new Error(`bad problem body: ${res.body}`)
      if (accounts && await factors() !== factorsKnown) throw new Error(`a refused request (${res.statusCode} ${body.code}) changed the second factors`)
      if (await passkeyRows() !== passkeysKnown) throw new Error(`a refused request (${res.statusCode} ${body.code}) changed the passkeys`)
      if (lifecycleKnown && await lifecycleRows() !== lifecycleKnown) throw new Error(`a refused request (${res.statusCode} ${body.code}) changed an account, a link, the outbox or a session`)
    }), { numRuns: RUNS })
    const after = await counts()
    // writes happen only on documented successes (a register or login is one session; logout may end one)
    if (route.url === '/register') {
      t.equal(after.users - before.users, successes, 'one user per 201')
    } else {
      t.equal(after.users, before.users, 'no user written')
    }
    if (route.url === '/login/mfa' || route.url === '/login/passkey' || route.url === '/oauth/token') {
      t.equal(after.sessions - before.sessions, successes, 'one session per 200')
    } else if (!['/register', '/login'].includes(route.url)) {
      t.equal(after.sessions, before.sessions, 'no session written')
    }
    // a suspension ends the target's session (the first time); a confirmation ends none, the link's account being signed out
    const endsSessions = route.url === '/admin/users/{id}/suspend' && route.method === 'POST' && successes > 0
    if (route.url !== '/refresh' && route.url !== '/logout' && !endsSessions) t.equal(after.revoked, before.revoked, 'nothing revoked')
    const passkeysChanged = route.url === '/passkeys/register' || route.url === '/passkeys/{id}' || route.url === '/login/passkey'
    if (!passkeysChanged || successes === 0) t.equal(await passkeyRows(), passkeysAtStart, 'no passkey added, changed or removed')
    if (route.passkey?.shaped) t.ok(successes > 0, 'some shaped answers were real ones, and succeeded')
    if (route.as) t.equal((await app.inject({ url: '/me', headers: { authorization: valid } })).statusCode, 200, 'the account is still signed in')
    if (accounts) t.equal((await app.inject({ url: '/me', headers: { authorization: `Bearer ${accounts.on.token}` } })).statusCode, 200, 'the account with TOTP on is still signed in')
    t.ok(true, `${RUNS} requests, ${successes} documented successes, no 5xx, no hang`)
  })
}
