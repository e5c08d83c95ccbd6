import { createHmac, randomBytes } from 'node:crypto'
import { sql } from 'drizzle-orm'
import t from 'tap'
import { generateSigningKey } from '../src/auth/keys.js'
import { assertProblem, build, claims, fakeClock, me, newAccount, refresh, register, rows, type TokenBody } from './helper.js'

const sessionRow = async (userId: string) => (await rows<{ refresh_counter: number, aal: string, amr: string[], revoked_reason: string | null }>(sql`
  select refresh_counter, aal, amr, revoked_reason from sessions where user_id = ${userId}`))

t.test('rotates: a new refresh token, the old one spent, the session row counted on', async t => {
  const app = await build(t)
  const { tokens } = await register(app)
  const res = await refresh(app, tokens.refreshToken)
  t.equal(res.statusCode, 200)
  t.equal(res.headers['cache-control'], 'no-store')
  const next = res.json() as TokenBody
  t.not(next.refreshToken, tokens.refreshToken)
  t.not(next.accessToken, tokens.accessToken)
  t.same(next.user, tokens.user)
  t.equal((await me(app, next.accessToken)).statusCode, 200)

  t.same(await sessionRow(tokens.user.id), [{ refresh_counter: 1, aal: 'aal1', amr: ['pwd'], revoked_reason: null }], 'one row, counter 1, what the sign-in proved kept')
  const payload = claims(next.accessToken)
  t.same([payload.aal, payload.amr], ['aal1', ['pwd']], 'the refreshed access token carries aal and amr')
})

t.test('storage stays flat: 2,000 rotations of one session leave one row and no growth', async t => {
  const app = await build(t, { env: { RATE_LIMIT_REFRESH_IP: '5000' } })
  const { tokens } = await register(app)
  const size = async () => (await rows<{ tables: number, sessions: number, bytes: number }>(sql`
    select (select count(*)::int from information_schema.tables where table_schema = 'public') as tables,
           (select count(*)::int from sessions where user_id = ${tokens.user.id}) as sessions,
           -- the main forks of tables, indexes and TOAST: the rows themselves (a vacuum that runs meanwhile adds
           -- free-space and visibility maps, which say nothing of what the rotations keep)
           (select sum(pg_relation_size(c.oid))::float8 from pg_class c join pg_namespace n on n.oid = c.relnamespace
            where n.nspname = 'public' and c.relkind in ('r', 'i', 't')) as bytes`))[0]!
  let token = tokens.refreshToken
  token = (await refresh(app, token)).json().refreshToken
  const before = await size()
  for (let i = 1; i < 2000; i++) {
    const res = await refresh(app, token)
    if (res.statusCode !== 200) t.fail(`rotation ${i}: ${res.statusCode} ${res.body}`)
    token = res.json().refreshToken
  }
  const after = await size()
  t.equal(after.sessions, 1, 'one session row')
  t.equal(after.tables, before.tables, 'no table appeared')
  t.same((await sessionRow(tokens.user.id)).map(r => r.refresh_counter), [2000])
  // in-place updates of unindexed columns are HOT: the page is pruned, nothing accumulates
  t.ok(after.bytes - before.bytes <= 64 * 1024, `relations grew by ${after.bytes - before.bytes} bytes over 1,999 rotations`)
  t.equal((await refresh(app, token)).statusCode, 200, 'the 2,001st token works')
})

t.test('a retry within the grace window gets the same successor; 16 parallel refreshes agree', async t => {
  const app = await build(t)
  const { tokens } = await register(app)
  const results = await Promise.all(Array.from({ length: 16 }, () => refresh(app, tokens.refreshToken)))
  t.same(results.map(r => r.statusCode), Array(16).fill(200))
  const successors = new Set(results.map(r => r.json().refreshToken))
  t.equal(successors.size, 1, 'one successor')
  const [successor] = [...successors] as [string]
  t.same((await sessionRow(tokens.user.id)).map(r => r.refresh_counter), [1], 'rotated once')
  t.equal((await refresh(app, successor)).statusCode, 200, 'the successor works')
})

t.test('reuse after the grace window ends the whole session', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock })
  const { tokens } = await register(app)
  const second = (await refresh(app, tokens.refreshToken)).json() as TokenBody
  clock.advance(11_000)
  const reused = await refresh(app, tokens.refreshToken)
  const body = assertProblem(t, reused, 401, 'refresh_token_reused')
  t.type(body.detail, 'string')
  assertProblem(t, await refresh(app, second.refreshToken), 401, 'session_revoked')
  const meRes = await me(app, second.accessToken)
  assertProblem(t, meRes, 401, 'session_revoked')
  t.equal(meRes.headers['www-authenticate'], 'Bearer realm="api", error="invalid_token"')
  const [session] = await rows<{ revoked_reason: string }>(sql`select revoked_reason from sessions where user_id = ${tokens.user.id}`)
  t.equal(session!.revoked_reason, 'refresh_token_reused')
  t.ok(app.logs.some(l => l.includes('refresh_reuse')), 'the reuse is logged')
})

t.test('reuse once the successor was itself spent ends the session, even inside the window', async t => {
  const app = await build(t)
  const { tokens } = await register(app)
  const second = (await refresh(app, tokens.refreshToken)).json() as TokenBody
  const third = (await refresh(app, second.refreshToken)).json() as TokenBody
  assertProblem(t, await refresh(app, tokens.refreshToken), 401, 'refresh_token_reused')
  assertProblem(t, await refresh(app, third.refreshToken), 401, 'session_revoked')
})

t.test('reuse from two clients at once revokes exactly once, no 5xx', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock })
  const { tokens } = await register(app)
  await refresh(app, tokens.refreshToken)
  clock.advance(60_000)
  const results = await Promise.all([refresh(app, tokens.refreshToken), refresh(app, tokens.refreshToken)])
  const codes = results.map(r => r.json().code).sort()
  t.same(codes, ['refresh_token_reused', 'session_revoked'])
})

t.test('idle expiry, and the absolute lifetime is never extended', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock, env: { REFRESH_TOKEN_TTL: '3600', SESSION_ABSOLUTE_TTL: '7200' } })
  const { tokens } = await register(app)
  t.equal(tokens.refreshExpiresIn, 3600)
  clock.advance(3601_000)
  assertProblem(t, await refresh(app, tokens.refreshToken), 401, 'invalid_token')

  const fresh = await register(app)
  clock.advance(3000_000)
  const second = (await refresh(app, fresh.tokens.refreshToken)).json() as TokenBody
  t.equal(second.refreshExpiresIn, 3600)
  clock.advance(3000_000)
  const third = (await refresh(app, second.refreshToken)).json() as TokenBody
  t.equal(third.refreshExpiresIn, 1200, 'capped by the absolute lifetime')
  clock.advance(1201_000)
  const expired = assertProblem(t, await refresh(app, third.refreshToken), 401, 'invalid_token')
  t.match(expired.detail, /expired/)
})

t.test('unknown, malformed and wrong-kind tokens are 401 or 400, and nothing changes', async t => {
  const app = await build(t)
  const { tokens } = await register(app)
  assertProblem(t, await refresh(app, 'A'.repeat(43)), 401, 'invalid_token')
  assertProblem(t, await refresh(app, 'short'), 401, 'invalid_token')
  assertProblem(t, await refresh(app, tokens.accessToken), 401, 'invalid_token')
  assertProblem(t, await refresh(app, 12345), 400, 'validation_failed')
  assertProblem(t, await refresh(app, 'x'.repeat(5000)), 400, 'validation_failed')
  assertProblem(t, await app.inject({ method: 'POST', url: '/refresh', payload: {} }), 400, 'validation_failed')
  assertProblem(t, await app.inject({ method: 'POST', url: '/refresh', payload: { refreshToken: tokens.refreshToken, extra: true } }), 400, 'validation_failed')
  t.same((await sessionRow(tokens.user.id)).map(r => r.refresh_counter), [0], 'no token was spent by a refused request')
  t.equal((await refresh(app, tokens.refreshToken)).statusCode, 200)
})

t.test('16 parallel refreshes of one token, round after round (RACE_REPEAT, 25 here, 1,000 in npm run fuzz): no 5xx, one lineage, always usable', async t => {
  const repeat = Number(process.env.RACE_REPEAT ?? 25)
  // every racer within the per-IP refresh limit (npm run fuzz repeats this 1,000 times)
  const app = await build(t, { env: { RATE_LIMIT_REFRESH_IP: String(16 * repeat + 100) } })
  const { tokens } = await register(app)
  let token = tokens.refreshToken
  let failures = 0
  for (let round = 0; round < repeat; round++) {
    const results = await Promise.all(Array.from({ length: 16 }, () => refresh(app, token)))
    const successors = new Set(results.map(r => r.statusCode === 200 ? r.json().refreshToken : `status ${r.statusCode}`))
    if (successors.size !== 1 || results.some(r => r.statusCode !== 200)) failures++
    token = [...successors][0] as string
  }
  t.equal(failures, 0, `${repeat} rounds, every racer answered 200 with the one successor`)
  t.same((await sessionRow(tokens.user.id)).map(r => r.refresh_counter), [repeat], 'one rotation per round')
  t.equal((await refresh(app, token)).statusCode, 200, 'the session is still usable')
})

t.test('any older token ends the session for its whole life, however long ago it was spent', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock })
  const { tokens } = await register(app, newAccount({ rememberMe: true }))
  let token = tokens.refreshToken
  for (let i = 0; i < 5; i++) {
    clock.advance(5 * 86_400_000)
    token = (await refresh(app, token)).json().refreshToken
  }
  // 25 days later the first token is long past any expiry it ever had, and still known as spent
  assertProblem(t, await refresh(app, tokens.refreshToken), 401, 'refresh_token_reused')
  t.same((await sessionRow(tokens.user.id)).map(r => r.revoked_reason), ['refresh_token_reused'])
  assertProblem(t, await refresh(app, token), 401, 'session_revoked')
})

t.test('a forged or altered token is refused and changes nothing', async t => {
  const app = await build(t)
  const { tokens } = await register(app)
  const raw = Buffer.from(tokens.refreshToken, 'base64url')
  const sessionId = raw.subarray(1, 17)
  // the same session and a later counter, under another key: what a copy of the database would allow
  const body = Buffer.concat([Buffer.from([1]), sessionId, Buffer.from([0, 0, 0, 1])])
  const forged = Buffer.concat([body, createHmac('sha256', randomBytes(32)).update(body).digest()]).toString('base64url')
  const flipped = Buffer.from(raw)
  flipped[20] = flipped[20]! ^ 1
  for (const bad of [forged, flipped.toString('base64url'), `${tokens.refreshToken.slice(0, -1)}${tokens.refreshToken.endsWith('A') ? 'B' : 'A'}`]) {
    assertProblem(t, await refresh(app, bad), 401, 'invalid_token')
  }
  t.same((await sessionRow(tokens.user.id)).map(r => [r.refresh_counter, r.revoked_reason]), [[0, null]], 'the session is untouched')
  t.equal((await refresh(app, tokens.refreshToken)).statusCode, 200)
})

t.test('REFRESH_TOKEN_PREVIOUS_SECRETS: tokens of a retired secret still rotate, onto the new one', async t => {
  const oldSecret = randomBytes(32).toString('base64')
  const newSecret = randomBytes(32).toString('base64')
  const before = await build(t, { env: { REFRESH_TOKEN_SECRET: oldSecret } })
  const { tokens } = await register(before)
  const rotated = await build(t, { env: { REFRESH_TOKEN_SECRET: newSecret, REFRESH_TOKEN_PREVIOUS_SECRETS: `${randomBytes(32).toString('base64')},${oldSecret}` } })
  const res = await refresh(rotated, tokens.refreshToken)
  t.equal(res.statusCode, 200, 'accepted under the previous secret')
  const next = res.json() as TokenBody
  const without = await build(t, { env: { REFRESH_TOKEN_SECRET: newSecret } })
  t.equal((await refresh(without, next.refreshToken)).statusCode, 200, 'the successor is made with the new secret')
  const stale = await refresh(without, tokens.refreshToken)
  assertProblem(t, stale, 401, 'invalid_token')
})

t.test('rotating the signing key signs nobody out: refresh tokens do not depend on it', async t => {
  const oldKey = generateSigningKey()
  const before = await build(t, { signingKey: oldKey })
  const { tokens } = await register(before)
  const after = await build(t, { signingKey: generateSigningKey(), env: { JWT_PREVIOUS_PUBLIC_KEYS: oldKey.publicPem } })
  const res = await refresh(after, tokens.refreshToken)
  t.equal(res.statusCode, 200)
  t.equal((await me(after, res.json().accessToken)).statusCode, 200, 'signed by the new key')
  t.equal((await me(after, tokens.accessToken)).statusCode, 200, 'the old access token still verifies until it expires')
})
