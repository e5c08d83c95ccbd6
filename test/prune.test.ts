import { sql } from 'drizzle-orm'
import t from 'tap'
import { LOGIN_WINDOW_MS } from '../src/auth/attempt-throttle.js'
import { pruneExpired } from '../src/repositories/prune.js'
import { bearer, build, fakeClock, newAccount, register, rows, testDatabase, type TokenBody } from './helper.js'

const DAY = 24 * 3600_000

t.test('purges ended sessions and stale counts, keeps everything still usable', async t => {
  const clock = fakeClock()
  const app = await build(t, { clock, env: { REFRESH_TOKEN_TTL: '3600', SESSION_ABSOLUTE_TTL: '86400' } })
  const refresh = async (token: string) => (await app.inject({ method: 'POST', url: '/refresh', payload: { refreshToken: token } })).json() as TokenBody

  const revoked = (await register(app)).tokens
  await app.inject({ method: 'POST', url: '/logout', payload: { refreshToken: revoked.refreshToken } })
  const idle = (await register(app)).tokens
  const account = newAccount()
  const live = (await register(app, account)).tokens
  await app.inject({ method: 'POST', url: '/login', payload: { email: 'nobody@example.com', password: 'wrong password' } })

  clock.advance(3000_000)
  const liveNext = await refresh(live.refreshToken)
  clock.advance(2 * DAY - 3000_000 - 60_000)
  // keep the live session going past the others' ends (absolute lifetime is a day, so a new sign-in)
  const again = (await app.inject({ method: 'POST', url: '/login', payload: { email: account.email, password: account.password } })).json() as TokenBody

  const removed = await pruneExpired((await testDatabase()).db, new Date(clock.now()), LOGIN_WINDOW_MS)
  t.ok(removed.sessions >= 3, `sessions removed: ${removed.sessions}`)
  t.ok(removed.throttles >= 1, 'stale login counts removed')
  const ids = [revoked.user.id, idle.user.id, live.user.id]
  const left = await rows<{ user_id: string }>(sql`select user_id from sessions where user_id in (${sql.join(ids.map(id => sql`${id}::uuid`), sql`, `)})`)
  t.same(left.map(r => r.user_id), [live.user.id], 'only the new session of the live user is left')
  t.equal((await app.inject({ url: '/me', headers: bearer(again.accessToken) })).statusCode, 200)
  t.equal((await refresh(again.refreshToken)).tokenType, 'Bearer', 'the new session still refreshes')
  t.ok(liveNext.refreshToken)
  // the first session of the live user ended with its absolute lifetime a day ago; the new one stays
  const [{ n }] = await rows<{ n: number }>(sql`select count(*)::int as n from sessions where user_id = ${live.user.id}`) as [{ n: number }]
  t.equal(n, 1)
})
