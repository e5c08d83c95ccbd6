import { sql } from 'drizzle-orm'
import t from 'tap'
import { assertProblem, bearer, build, fakeClock, register, rows, type TestApp, type TokenBody } from './helper.js'

const refresh = (app: TestApp, refreshToken: unknown) => app.inject({ method: 'POST', url: '/refresh', payload: { refreshToken } })
const me = (app: TestApp, token: string) => app.inject({ url: '/me', headers: bearer(token) })

t.test('rotates: a new refresh token, the old one spent, linked to its parent', async t => {
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

  const chain = await rows<{ id: string, parent_id: string | null, spent: boolean }>(sql`
    select rt.id, rt.parent_id, rt.spent_at is not null as spent from refresh_tokens rt
    join sessions s on s.id = rt.session_id where s.user_id = ${tokens.user.id} order by rt.created_at, rt.id`)
  t.equal(chain.length, 2)
  t.same(chain.map(r => r.spent), [true, false])
  t.equal(chain[1]!.parent_id, chain[0]!.id)
})

t.test('a retry within the grace window gets the same successor; 16 parallel refreshes agree', async t => {
  const app = await build(t)
  const { tokens } = await register(app)
  const results = await Promise.all(Array.from({ length: 16 }, () => refresh(app, tokens.refreshToken)))
  t.same(results.map(r => r.statusCode), Array(16).fill(200))
  const successors = new Set(results.map(r => r.json().refreshToken))
  t.equal(successors.size, 1, 'one successor')
  const [successor] = [...successors] as [string]
  const live = await rows<{ n: number }>(sql`select count(*)::int as n from refresh_tokens rt join sessions s on s.id = rt.session_id
    where s.user_id = ${tokens.user.id} and rt.spent_at is null`)
  t.equal(live[0]!.n, 1, 'one live token in the session')
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
  const [spent] = await rows<{ n: number }>(sql`select count(*)::int as n from refresh_tokens rt join sessions s on s.id = rt.session_id where s.user_id = ${tokens.user.id} and rt.spent_at is not null`)
  t.equal(spent!.n, 0, 'no token was spent by a refused request')
  t.equal((await refresh(app, tokens.refreshToken)).statusCode, 200)
})

t.test('16 parallel refreshes of one token, 100 times over: no 5xx, one lineage, always usable', async t => {
  const repeat = Number(process.env.RACE_REPEAT ?? 100)
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
  const [live] = await rows<{ n: number }>(sql`select count(*)::int as n from refresh_tokens rt join sessions s on s.id = rt.session_id
    where s.user_id = ${tokens.user.id} and rt.spent_at is null`)
  t.equal(live!.n, 1, 'one live token at the end')
  t.equal((await refresh(app, token)).statusCode, 200, 'the session is still usable')
})
