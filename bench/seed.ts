// Rows the loads need, written in SQL straight to the bench database, and the refresh tokens of its sessions.
import type postgres from 'postgres'
import type { RefreshTokens } from '../src/auth/refresh-tokens.js'

/** A UUIDv7 for the time `at` (a timestamptz expression), laid out as src/ids.ts lays it out. */
const uuidv7At = (at: string) => {
  const hex = `lpad(to_hex((extract(epoch from ${at}) * 1000)::bigint), 12, '0')`
  return `(substr(${hex}, 1, 8) || '-' || substr(${hex}, 9) || '-7' || substr(gen_random_uuid()::text, 16))::uuid`
}

/**
 * A live session as a password sign-in opens it, at counter 0, with the service's default lifetimes (30 days
 * from sign-in, 12 hours idle): the values of SESSION_COLUMNS after id and user_id.
 */
const SESSION_COLUMNS = 'id, user_id, remember_me, created_at, last_used_at, absolute_expires_at, refresh_counter, refresh_expires_at, aal, amr'
const liveSession = (createdAt: string, lastUsedAt: string) =>
  `false, ${createdAt}, ${lastUsedAt}, ${createdAt} + interval '30 days', 0,
   least(${lastUsedAt} + interval '12 hours', ${createdAt} + interval '30 days'), 'aal1', '{pwd}'`

/** `count` live sessions of one user, one row each, and their refresh tokens (counter 0), each usable once. */
export async function seedLiveSessions (sql: postgres.Sql, codec: RefreshTokens, userId: string, count: number) {
  const rows = await sql.unsafe<{ id: string }[]>(`
    insert into sessions (${SESSION_COLUMNS})
    select ${uuidv7At('clock_timestamp()')}, $1::uuid, ${liveSession('now()', 'now()')}
    from generate_series(1, $2::int)
    returning id`, [userId, count])
  return rows.map(r => codec.issue(r.id, 0))
}

/** The address of the `i`th user of a population (1-based). */
export const populationEmail = (i: number) => `scale${String(i).padStart(7, '0')}@example.com`

/**
 * `count` users, each with one live session, in chunks of one statement each (`progress` after each). Users
 * signed up over the past year, sessions opened over the past 20 days and used within the past 11 hours;
 * ids are UUIDv7 of those times, so rows and indexes grow in time order as the service's would. Every user
 * has `passwordHash` (one real hash, so sign-ins cost what they cost) and a verified address.
 */
export async function seedPopulation (sql: postgres.Sql, count: number, passwordHash: string, progress: (done: number) => void) {
  const CHUNK = 100_000
  for (let from = 1; from <= count; from += CHUNK) {
    const to = Math.min(count, from + CHUNK - 1)
    await sql.unsafe(`
      with g as materialized (
        select i, t.user_at, t.session_at, greatest(t.session_at, now() - ((i::bigint * 7919) % 39600) * interval '1 second') as used_at
        from generate_series($1::int, $2::int) i,
             lateral (select now() - interval '365 days' + (i - 1) * (interval '345 days' / $4::int) as user_at,
                             now() - interval '20 days' + (i - 1) * (interval '19 days' / $4::int) as session_at) t
      ), ids as materialized (
        select g.*, ${uuidv7At('user_at')} as user_id, ${uuidv7At('session_at')} as session_id from g
      ), u as (
        insert into users (id, email, password_hash, role, email_verified_at, created_at, updated_at)
        select user_id, 'scale' || lpad(i::text, 7, '0') || '@example.com', $3::text, 'user', user_at, user_at, user_at from ids
      )
      insert into sessions (${SESSION_COLUMNS})
      select session_id, user_id, ${liveSession('session_at', 'used_at')} from ids`, [from, to, passwordHash, count])
    progress(to)
  }
}
