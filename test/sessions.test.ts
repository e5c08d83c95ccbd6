import { sql } from 'drizzle-orm'
import t from 'tap'
import { assertProblem, build, claims, fakeClock, listSessions, me, newAccount, refresh, register, revokeSession, rows, signIn, type TokenBody } from './helper.js'

interface SessionBody { id: string, current: boolean, createdAt: string, lastUsedAt: string, expiresAt: string, rememberMe: boolean, aal: string, userAgent: string | null, ip: string | null }
const sessionsOf = (res: { json: () => unknown }) => (res.json() as { sessions: SessionBody[] }).sessions
const sidOf = (accessToken: string) => claims(accessToken).sid as string

t.test('GET /sessions: live sessions newest first, the caller\'s marked, with user agent and IP, never a token', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock, env: { TRUST_PROXY: 'true' } })
  const account = newAccount()
  const phone = (await app.inject({
    method: 'POST', url: '/register', headers: { 'user-agent': 'PhoneApp/1.0', 'x-forwarded-for': '203.0.113.7' }, payload: account,
  })).json() as TokenBody
  clock.advance(1000)
  const laptop = await signIn(app, account, { rememberMe: true }, { 'user-agent': 'Laptop/2.0', 'x-forwarded-for': '198.51.100.9' })
  const stranger = (await register(app)).tokens

  const res = await listSessions(app, laptop.accessToken)
  t.equal(res.statusCode, 200)
  t.equal(res.headers['cache-control'], 'no-store')
  const sessions = sessionsOf(res)
  t.same(sessions.map(s => s.id), [sidOf(laptop.accessToken), sidOf(phone.accessToken)], 'newest first, only this user\'s')
  t.same(Object.keys(sessions[0]!).sort(), ['aal', 'createdAt', 'current', 'expiresAt', 'id', 'ip', 'lastUsedAt', 'rememberMe', 'userAgent'])
  t.match(sessions[0], { current: true, rememberMe: true, aal: 'aal1', userAgent: 'Laptop/2.0', ip: '198.51.100.9' })
  t.match(sessions[1], { current: false, rememberMe: false, aal: 'aal1', userAgent: 'PhoneApp/1.0', ip: '203.0.113.7' })
  t.equal(sessions[0]!.createdAt, new Date(clock.now()).toISOString())
  t.equal(sessions[0]!.expiresAt, new Date(clock.now() + laptop.refreshExpiresIn * 1000).toISOString(), 'when the refresh token runs out')
  for (const secret of [laptop.refreshToken, phone.refreshToken, laptop.accessToken]) t.notOk(res.body.includes(secret), 'no token in the list')
  t.notOk(/hash/i.test(res.body))
  t.equal(sessionsOf(await listSessions(app, stranger.accessToken)).length, 1, 'another user sees only their own')

  // a refresh is a use: last used, user agent and IP follow it, and the idle limit moves
  clock.advance(60_000)
  const next = (await refresh(app, phone.refreshToken, { 'user-agent': 'PhoneApp/1.1', 'x-forwarded-for': '203.0.113.8' })).json() as TokenBody
  const [, phoneNow] = sessionsOf(await listSessions(app, next.accessToken))
  t.match(phoneNow, { id: sidOf(phone.accessToken), current: true, userAgent: 'PhoneApp/1.1', ip: '203.0.113.8', lastUsedAt: new Date(clock.now()).toISOString() })
  t.equal(phoneNow!.expiresAt, new Date(clock.now() + next.refreshExpiresIn * 1000).toISOString())
})

t.test('ended sessions are not listed: signed out, idle-expired, past the absolute lifetime', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock, env: { REFRESH_TOKEN_TTL: '600', SESSION_ABSOLUTE_TTL: '3600' } })
  const account = newAccount()
  const first = (await register(app, account)).tokens
  const idle = await signIn(app, account)
  const signedOut = await signIn(app, account)
  t.equal((await app.inject({ method: 'POST', url: '/logout', payload: { refreshToken: signedOut.refreshToken } })).statusCode, 204)

  // keep only the first one in use; the idle one runs out after 10 minutes
  let current = first
  for (let i = 0; i < 6; i++) {
    clock.advance(500_000)
    current = (await refresh(app, current.refreshToken)).json() as TokenBody
  }
  const sessions = sessionsOf(await listSessions(app, current.accessToken))
  t.same(sessions.map(s => s.id), [sidOf(first.accessToken)], 'only the session in use')
  t.not(sidOf(idle.accessToken), sessions[0]!.id)
  // 3000 s after sign-in: the idle limit (600 s) would pass the absolute one (3600 s), so that one is shown
  t.equal(sessions[0]!.expiresAt, new Date(clock.now() - 3_000_000 + 3_600_000).toISOString(), 'the earlier of the idle and absolute limits')

  clock.advance(700_000)
  assertProblem(t, await listSessions(app, current.accessToken), 401, 'invalid_token')
})

t.test('DELETE /sessions/{id}: ends that session at once; the others stay', async t => {
  const app = await build(t)
  const account = newAccount()
  const phone = (await register(app, account)).tokens
  const laptop = await signIn(app, account)

  const res = await revokeSession(app, laptop.accessToken, sidOf(phone.accessToken))
  t.equal(res.statusCode, 204)
  t.equal(res.body, '')
  t.equal(res.headers['cache-control'], 'no-store')
  assertProblem(t, await me(app, phone.accessToken), 401, 'session_revoked')
  assertProblem(t, await refresh(app, phone.refreshToken), 401, 'session_revoked')
  t.equal((await me(app, laptop.accessToken)).statusCode, 200)
  t.same(sessionsOf(await listSessions(app, laptop.accessToken)).map(s => s.id), [sidOf(laptop.accessToken)])
  const [row] = await rows<{ revoked_reason: string }>(sql`select revoked_reason from sessions where id = ${sidOf(phone.accessToken)}`)
  t.equal(row!.revoked_reason, 'revoked_by_user')
  t.match(app.logs.join(''), new RegExp(`"audit":"session_revoked".*"userId":"${laptop.user.id}".*"sessionId":"${sidOf(laptop.accessToken)}".*"revokedSessionId":"${sidOf(phone.accessToken)}"`))
  t.notOk(app.logs.join('').includes(phone.refreshToken))

  assertProblem(t, await revokeSession(app, laptop.accessToken, sidOf(phone.accessToken)), 404, 'not_found')
})

t.test('malformed, unknown, ended and other users\' ids are all the same 404, and change nothing', async t => {
  const app = await build(t)
  const mine = (await register(app)).tokens
  const theirs = (await register(app)).tokens
  const ended = (await register(app, newAccount())).tokens
  const body404 = assertProblem(t, await revokeSession(app, theirs.accessToken, sidOf(mine.accessToken)), 404, 'not_found')
  for (const id of ['not-a-uuid', '00000000-0000-0000-0000-000000000000', '%E2%80%8B', 'x'.repeat(300), sidOf(ended.accessToken)]) {
    if (id === sidOf(ended.accessToken)) await revokeSession(app, ended.accessToken, id)
    const res = await revokeSession(app, mine.accessToken, id)
    t.same(assertProblem(t, res, 404, 'not_found'), body404, `same answer for ${id.slice(0, 40)}`)
  }
  assertProblem(t, await revokeSession(app, mine.accessToken, 'x'.repeat(2000)), 404, 'not_found')
  const badUrl = await revokeSession(app, mine.accessToken, '%zz')
  assertProblem(t, badUrl, 400, 'validation_failed')
  t.equal(badUrl.headers['cache-control'], 'no-store', 'router refusals are problems too')
  t.equal((await me(app, mine.accessToken)).statusCode, 200)
  t.equal((await me(app, theirs.accessToken)).statusCode, 200, 'someone else\'s session was not touched')
  const [row] = await rows<{ revoked: number }>(sql`select count(*)::int as revoked from sessions where revoked_at is not null and user_id in (${mine.user.id}, ${theirs.user.id})`)
  t.equal(row!.revoked, 0)
})

t.test('revoking the current session is a logout (and clears the refresh cookie)', async t => {
  const app = await build(t, { env: { COOKIE_SECURE: 'false', CORS_ORIGINS: 'http://app.test' } })
  const res = await app.inject({ method: 'POST', url: '/register', headers: { 'x-auth-mode': 'cookie' }, payload: newAccount() })
  const tokens = res.json() as TokenBody
  const cookie = String(res.headers['set-cookie']).split(';')[0]!
  const out = await revokeSession(app, tokens.accessToken, sidOf(tokens.accessToken), { cookie })
  t.equal(out.statusCode, 204)
  t.match(String(out.headers['set-cookie']), /Max-Age=0/, 'the cookie is cleared')
  assertProblem(t, await me(app, tokens.accessToken), 401, 'session_revoked')
  const again = await app.inject({ method: 'POST', url: '/refresh', headers: { cookie, 'x-auth-mode': 'cookie', origin: 'http://app.test' } })
  assertProblem(t, again, 401, 'session_revoked')
})

t.test('GET /sessions a page at a time: limit, cursor, nextCursor null on the last page; a bad cursor or limit is 400', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock })
  const account = newAccount()
  const made: TokenBody[] = [(await register(app, account)).tokens]
  for (let i = 0; i < 5; i++) {
    clock.advance(1000)
    made.push(await signIn(app, account))
  }
  const caller = made[5]!
  // an ended session is left out of the pages as of the list
  t.equal((await revokeSession(app, caller.accessToken, sidOf(made[2]!.accessToken))).statusCode, 204)
  const live = [5, 4, 3, 1, 0].map(i => sidOf(made[i]!.accessToken))
  const page = (query: string) => app.inject({ url: `/sessions?${query}`, headers: { authorization: `Bearer ${caller.accessToken}` } })
  const body = (res: { json: () => unknown }) => res.json() as { sessions: SessionBody[], nextCursor: string | null }

  const all = body(await page(''))
  t.same(all.sessions.map(s => s.id), live, 'newest first')
  t.equal(all.nextCursor, null, 'all on one page (20 by default)')

  for (const limit of [1, 2, 4, 5]) {
    const ids: string[] = []
    let cursor: string | null = null
    let pages = 0
    do {
      const res = await page(`limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`)
      t.equal(res.statusCode, 200)
      const { sessions, nextCursor } = body(res)
      t.ok(sessions.length <= limit)
      ids.push(...sessions.map(s => s.id))
      if (nextCursor) t.equal(nextCursor, sessions.at(-1)!.id, 'the cursor is the last id of the page')
      cursor = nextCursor
      pages++
    } while (cursor)
    t.same(ids, live, `limit ${limit}: every live session once, in order`)
    t.equal(pages, Math.ceil(live.length / limit), `limit ${limit}: no empty last page`)
  }
  t.same(body(await page(`limit=2&cursor=${live[1]!.toUpperCase()}`)).sessions.map(s => s.id), live.slice(2, 4), 'a cursor in capitals')
  t.same(body(await page('cursor=00000000-0000-7000-8000-000000000000')), { sessions: [], nextCursor: null }, 'a cursor before them all: an empty page')
  t.ok(body(await page('limit=1')).sessions[0]!.current, 'the caller\'s session is marked')

  for (const query of ['limit=0', 'limit=101', 'limit=abc', 'limit=1.5', 'cursor=nope', 'cursor=', 'cursor=1', 'other=1']) {
    assertProblem(t, await page(query), 400, 'validation_failed')
  }
  t.equal((await page('limit=100')).statusCode, 200)
})
