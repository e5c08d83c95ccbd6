// Rows the loads need, written in SQL straight to the bench database, and the refresh tokens of its sessions.
import type postgres from 'postgres'
import type { RefreshTokens } from '../src/auth/refresh-tokens.js'

/** A UUIDv7 for the time `at` (a timestamptz expression), laid out as src/ids.ts lays it out. */
const uuidv7At = (at: string) => {
  const hex = `lpad(to_hex((extract(epoch from ${at}) * 1000)::bigint), 12, '0')`
  return `(substr(${hex}, 1, 8) || '-' || substr(${hex}, 9) || '-7' || substr(gen_random_uuid()::text, 16))::uuid`
}

/** A live session as a password sign-in opens it, at counter 0 (the columns of the insert below, after id and user_id). */
const SESSION_COLUMNS = 'id, user_id, remember_me, created_at, last_used_at, absolute_expires_at, refresh_counter, refresh_expires_at, aal, amr'
const liveSession = (createdAt: string) =>
  `false, ${createdAt}, ${createdAt}, ${createdAt} + interval '30 days', 0, least(now() + interval '12 hours', ${createdAt} + interval '30 days'), 'aal1', '{pwd}'`

/** `count` live sessions of one user, one row each, and their refresh tokens (counter 0), each usable once. */
export async function seedLiveSessions (sql: postgres.Sql, codec: RefreshTokens, userId: string, count: number) {
  const rows = await sql.unsafe<{ id: string }[]>(`
    insert into sessions (${SESSION_COLUMNS})
    select ${uuidv7At('clock_timestamp()')}, $1::uuid, ${liveSession('now()')}
    from generate_series(1, $2::int)
    returning id`, [userId, count])
  return rows.map(r => codec.issue(r.id, 0))
}
