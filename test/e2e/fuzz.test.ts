import fc from 'fast-check'
import { sql } from 'drizzle-orm'
import t from 'tap'
import { PASSWORD_PROOF } from '../../src/auth/sign-in.js'
import { build, call, enableTotp, register, rows, totp, type TestApp } from '../helper.js'

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
interface Route { method: Method, url: string, fields: string[], success: number[], as?: 'user' | 'admin', mfa?: true, live?: Live[] }

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
  )
  return raw
}

const contentType = fc.option(fc.oneof(fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/problem+json'), printable), { nil: undefined })
// a route with live secrets mostly gets JSON, so that its bodies reach the checks of codes and tokens
const headers = (route: Route) => fc.record({
  'content-type': route.live ? fc.oneof({ arbitrary: fc.constant('application/json'), weight: 3 }, { arbitrary: contentType, weight: 1 }) : contentType,
  authorization: fc.option(fc.oneof(printable, printable.map(s => `Bearer ${s}`), fc.constant('Bearer eyJhbGciOiJub25lIn0.e30.')), { nil: undefined }),
  cookie: fc.option(fc.oneof(printable, printable.map(s => `__Host-refresh=${s}`), printable.map(s => `refresh=${s}`)), { nil: undefined }),
  'x-auth-mode': fc.option(fc.constantFrom('cookie', 'body', 'COOKIE', ''), { nil: undefined }),
}, { requiredKeys: route.live ? ['content-type'] : [] })

// odd characters in the query too (but a lone surrogate, which cannot be percent-encoded)
const query = fc.option(fc.oneof(
  fc.string({ maxLength: 30 }).map(s => `?${encodeURIComponent(s)}=${encodeURIComponent(s)}`),
  fc.tuple(fc.constantFrom('limit', 'cursor', 'email'), fc.oneof(printable, fc.integer().map(String), fc.uuid(), oddUnicode.filter(s => s !== '\uD800'))).map(([k, v]) => `?${k}=${encodeURIComponent(v)}`),
), { nil: '' })
const pathSegment = fc.oneof(fc.uuid(), printable.map(encodeURIComponent), fc.string({ maxLength: 300 }).map(encodeURIComponent), fc.constantFrom('%zz', '%00', '..', '%2F'))

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
    await fc.assert(fc.asyncProperty(bodies(route), headers(route), query, pathSegment, fc.boolean(), fc.boolean(), async (raw, hdrs, q, segment, signedIn, withTotp) => {
      // the account with TOTP on, or (with its token) the one enrolling
      const account = accounts && (withTotp || !route.mfa ? accounts.on : accounts.pending)
      const payload = live ? await live.fill(raw, account!) : raw
      const authorization = account ? `Bearer ${account.token}` : valid
      const res = await send(app, route, payload, route.as && signedIn ? { ...hdrs, authorization } : hdrs, q, segment)
      if (route.success.includes(res.statusCode)) {
        successes++
        if (account) {
          await afterSuccess(app, route, account, res.body, live!)
          factorsKnown = await factors()
        }
        return
      }
      if (res.statusCode < 400 || res.statusCode >= 500) throw new Error(`${res.statusCode}: ${res.body.slice(0, 300)}`)
      if (!String(res.headers['content-type']).startsWith('application/problem+json')) throw new Error(`not a problem: ${res.headers['content-type']}`)
      const body = JSON.parse(res.body)
      if (typeof body.code !== 'string' || body.status !== res.statusCode) throw new Error(`bad problem body: ${res.body}`)
      if (accounts && await factors() !== factorsKnown) throw new Error(`a refused request (${res.statusCode} ${body.code}) changed the second factors`)
    }), { numRuns: RUNS })
    const after = await counts()
    // writes happen only on documented successes (a register or login is one session; logout may end one)
    if (route.url === '/register') {
      t.equal(after.users - before.users, successes, 'one user per 201')
    } else {
      t.equal(after.users, before.users, 'no user written')
    }
    if (route.url === '/login/mfa') {
      t.equal(after.sessions - before.sessions, successes, 'one session per 200')
    } else if (!['/register', '/login'].includes(route.url)) {
      t.equal(after.sessions, before.sessions, 'no session written')
    }
    if (route.url !== '/refresh' && route.url !== '/logout') t.equal(after.revoked, before.revoked, 'nothing revoked')
    if (route.as) t.equal((await app.inject({ url: '/me', headers: { authorization: valid } })).statusCode, 200, 'the account is still signed in')
    if (accounts) t.equal((await app.inject({ url: '/me', headers: { authorization: `Bearer ${accounts.on.token}` } })).statusCode, 200, 'the account with TOTP on is still signed in')
    t.ok(true, `${RUNS} requests, ${successes} documented successes, no 5xx, no hang`)
  })
}
