import fc from 'fast-check'
import { sql } from 'drizzle-orm'
import t from 'tap'
import { build, register, rows, type TestApp } from '../helper.js'

// Hostile input for every route: the answer is a documented success or a 4xx problem, never a 5xx,
// never a hang, and a refused request writes nothing. FUZZ_RUNS raises the count (npm run fuzz).
const RUNS = Number(process.env.FUZZ_RUNS ?? 1000)
const HANG_MS = 5000

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE'
/** `{id}` in a url is replaced by hostile path segments; `as` sends a valid bearer token of that role half the time. */
interface Route { method: Method, url: string, fields: string[], success: number[], as?: 'user' | 'admin' }
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
]

const printable = fc.stringMatching(/^[\x20-\x7e]{0,80}$/)
const oddUnicode = fc.constantFrom('\u0000', '\u202e', '\u200b', 'e\u0301', '\uFEFF', '\uD800', 'ﬁ', '𝒜', '\u{1F600}', 'İ', 'ß')
const weird = fc.oneof(fc.anything(), fc.string({ unit: 'grapheme', maxLength: 40 }), fc.array(oddUnicode, { maxLength: 20 }).map(a => a.join('')), fc.string({ maxLength: 2000 }))
const protoKeys = fc.constantFrom('__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'toString')

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
  )
  return raw
}

const headers = fc.record({
  'content-type': fc.option(fc.oneof(fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/problem+json'), printable), { nil: undefined }),
  authorization: fc.option(fc.oneof(printable, printable.map(s => `Bearer ${s}`), fc.constant('Bearer eyJhbGciOiJub25lIn0.e30.')), { nil: undefined }),
  cookie: fc.option(fc.oneof(printable, printable.map(s => `__Host-refresh=${s}`), printable.map(s => `refresh=${s}`)), { nil: undefined }),
  'x-auth-mode': fc.option(fc.constantFrom('cookie', 'body', 'COOKIE', ''), { nil: undefined }),
}, { requiredKeys: [] })

const query = fc.option(fc.oneof(
  fc.string({ maxLength: 30 }).map(s => `?${encodeURIComponent(s)}=${encodeURIComponent(s)}`),
  fc.tuple(fc.constantFrom('limit', 'cursor', 'email'), fc.oneof(printable, fc.integer().map(String), fc.uuid())).map(([k, v]) => `?${k}=${encodeURIComponent(v)}`),
), { nil: '' })
const pathSegment = fc.oneof(fc.uuid(), printable.map(encodeURIComponent), fc.string({ maxLength: 300 }).map(encodeURIComponent), fc.constantFrom('%zz', '%00', '..', '%2F'))

async function counts () {
  const [row] = await rows<{ users: number, sessions: number, rotations: number, revoked: number }>(sql`
    select (select count(*)::int from users) as users, (select count(*)::int from sessions) as sessions,
           (select coalesce(sum(refresh_counter), 0)::int from sessions) as rotations,
           (select count(*)::int from sessions where revoked_at is not null) as revoked`)
  return row!
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

for (const route of routes) {
  t.test(`${route.method} ${route.url}: ${RUNS} hostile requests`, async t => {
    const app = await build(t)
    // a live account, so tokens and cookies have something real to collide with
    const { tokens } = await register(app)
    if (route.as === 'admin') await rows(sql`update users set role = 'admin' where id = ${tokens.user.id}`)
    const valid = `Bearer ${tokens.accessToken}`
    const before = await counts()
    let successes = 0
    await fc.assert(fc.asyncProperty(bodies(route), headers, query, pathSegment, fc.boolean(), async (payload, hdrs, q, segment, signedIn) => {
      const res = await send(app, route, payload, route.as && signedIn ? { ...hdrs, authorization: valid } : hdrs, q, segment)
      if (route.success.includes(res.statusCode)) {
        successes++
        return
      }
      if (res.statusCode < 400 || res.statusCode >= 500) throw new Error(`${res.statusCode}: ${res.body.slice(0, 300)}`)
      if (!String(res.headers['content-type']).startsWith('application/problem+json')) throw new Error(`not a problem: ${res.headers['content-type']}`)
      const body = JSON.parse(res.body)
      if (typeof body.code !== 'string' || body.status !== res.statusCode) throw new Error(`bad problem body: ${res.body}`)
    }), { numRuns: RUNS })
    const after = await counts()
    // writes happen only on documented successes (a register or login is one session; logout may end one)
    if (route.url === '/register') {
      t.equal(after.users - before.users, successes, 'one user per 201')
    } else {
      t.equal(after.users, before.users, 'no user written')
    }
    if (!['/register', '/login'].includes(route.url)) t.equal(after.sessions, before.sessions, 'no session written')
    if (route.url !== '/refresh' && route.url !== '/logout') t.equal(after.revoked, before.revoked, 'nothing revoked')
    if (route.as) t.equal((await app.inject({ url: '/me', headers: { authorization: valid } })).statusCode, 200, 'the account is still signed in')
    t.ok(true, `${RUNS} requests, ${successes} documented successes, no 5xx, no hang`)
  })
}
