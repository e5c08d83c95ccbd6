import { eq, sql } from 'drizzle-orm'
import { fromEpochMs as date, statement, type Database, type Executor } from '../db/client.js'
import { refreshTokens, sessions } from '../db/schema.js'
import { USER_EPOCH_COLUMNS, userFromEpochColumns, type UserEpochColumns } from './users.js'

/** Rows of a raw query, whichever driver ran it (postgres.js gives an array, PGlite `{ rows }`). */
function rowsOf<T> (result: unknown): T[] {
  return Array.isArray(result) ? result as T[] : (result as { rows: T[] }).rows
}

interface LockedRow extends UserEpochColumns {
  token_id: string,
  token_expires_ms: number,
  token_spent_ms: number | null
  session_id: string,
  remember_me: boolean,
  absolute_expires_ms: number,
  revoked_ms: number | null
}

/**
 * The token, its session and user, with the token and session rows locked until the transaction
 * ends: every concurrent refresh of one token (or one session) is serialised here.
 * Written as plain SQL (times as epoch milliseconds, the same from either driver): it runs on every
 * refresh, and the query builder's cost showed in the profile.
 */
export async function lockRefreshToken (ex: Executor, tokenHash: string) {
  const [row] = rowsOf<LockedRow>(await ex.execute(sql`
    select rt.id as token_id,
           extract(epoch from rt.expires_at)::float8 * 1000 as token_expires_ms,
           extract(epoch from rt.spent_at)::float8 * 1000 as token_spent_ms,
           s.id as session_id, s.remember_me,
           extract(epoch from s.absolute_expires_at)::float8 * 1000 as absolute_expires_ms,
           extract(epoch from s.revoked_at)::float8 * 1000 as revoked_ms,
           ${sql.raw(USER_EPOCH_COLUMNS)}
    from refresh_tokens rt
    join sessions s on s.id = rt.session_id
    join users u on u.id = s.user_id
    where rt.token_hash = ${tokenHash}
    limit 1
    for update of rt, s`))
  if (!row) return undefined
  return {
    token: { id: row.token_id, expiresAt: date(row.token_expires_ms)!, spentAt: date(row.token_spent_ms) },
    session: { id: row.session_id, rememberMe: row.remember_me, absoluteExpiresAt: date(row.absolute_expires_ms)!, revokedAt: date(row.revoked_ms) },
    user: userFromEpochColumns(row),
  }
}

export async function findChildToken (ex: Executor, parentId: string) {
  const [row] = await ex.select({ id: refreshTokens.id, expiresAt: refreshTokens.expiresAt, spentAt: refreshTokens.spentAt })
    .from(refreshTokens).where(eq(refreshTokens.parentId, parentId)).limit(1)
  return row
}

/** The session a token belongs to, whatever the token's state (for logout). */
export async function findSessionOfToken (ex: Executor, tokenHash: string) {
  const [row] = await ex.select({ sessionId: refreshTokens.sessionId, userId: sessions.userId })
    .from(refreshTokens).innerJoin(sessions, eq(sessions.id, refreshTokens.sessionId))
    .where(eq(refreshTokens.tokenHash, tokenHash)).limit(1)
  return row
}

/**
 * The rotation's writes in one round trip: spend the token, insert its successor, touch the session.
 * Raw fragments take ISO strings (drizzle passes Date objects through only for typed columns).
 */
export async function rotateRefreshToken (ex: Executor, r: {
  spentId: string, sessionId: string, successorId: string, successorHash: string, now: Date, expiresAt: Date, ip: string | null, userAgent: string | null
}): Promise<void> {
  const now = r.now.toISOString()
  await ex.execute(sql`
    with spent as (
      update refresh_tokens set spent_at = ${now}::timestamptz where id = ${r.spentId}
    ), touched as (
      update sessions set last_used_at = ${now}::timestamptz, ip = ${r.ip}, user_agent = ${r.userAgent} where id = ${r.sessionId}
    )
    insert into refresh_tokens (id, session_id, token_hash, parent_id, created_at, expires_at)
    values (${r.successorId}, ${r.sessionId}, ${r.successorHash}, ${r.spentId}, ${now}::timestamptz, ${r.expiresAt.toISOString()}::timestamptz)`)
}

interface RotatedRow extends UserEpochColumns {
  session_id: string
  remember_me: boolean
  successor_expires_ms: number | null
}

// Lock the token and its session (as lockRefreshToken does), and only when the token is live (unspent,
// unexpired, session neither revoked nor past its absolute end) spend it, touch the session and insert
// the successor. A concurrent refresh of the same token waits on the lock, then sees the token spent.
const rotateIfLiveStatement = statement<RotatedRow>(`
  with t as (
    select rt.id as token_id, rt.expires_at, rt.spent_at, s.id as session_id, s.remember_me, s.absolute_expires_at, s.revoked_at,
           ${USER_EPOCH_COLUMNS}
    from refresh_tokens rt
    join sessions s on s.id = rt.session_id
    join users u on u.id = s.user_id
    where rt.token_hash = $1::text
    limit 1
    for update of rt, s
  ), live as (
    select token_id, session_id,
           least($2::timestamptz + (case when remember_me then $4::bigint else $3::bigint end) * interval '1 millisecond', absolute_expires_at) as successor_expires_at
    from t
    where spent_at is null and revoked_at is null and expires_at > $2::timestamptz and absolute_expires_at > $2::timestamptz
  ), spent as (
    update refresh_tokens set spent_at = $2::timestamptz where id = (select token_id from live)
  ), touched as (
    update sessions set last_used_at = $2::timestamptz, ip = $7::text, user_agent = $8::text where id = (select session_id from live)
  ), successor as (
    insert into refresh_tokens (id, session_id, token_hash, parent_id, created_at, expires_at)
    select $5::uuid, session_id, $6::text, token_id, $2::timestamptz, successor_expires_at from live
    returning expires_at
  )
  select t.session_id, t.remember_me, t.user_id, t.email, t.username, t.name, t.role, t.email_verified_ms, t.user_created_ms,
         extract(epoch from (select expires_at from successor))::float8 * 1000 as successor_expires_ms
  from t`)

/**
 * The usual refresh in one statement (one round trip, atomic without a transaction): a live token is
 * spent and its successor inserted. Returns `missing` when no token has this hash, `rotated` with the
 * successor's expiry, or `not_live` (spent, expired or revoked: nothing was written; the caller decides
 * between a grace-window retry, a reuse and a plain refusal under a lock, as before).
 */
export async function rotateIfLive (db: Database, r: {
  tokenHash: string, now: Date, idleTtlMs: number, rememberTtlMs: number, successorId: string, successorHash: string, ip: string | null, userAgent: string | null
}) {
  const [row] = await rotateIfLiveStatement(db, [r.tokenHash, r.now.toISOString(), r.idleTtlMs, r.rememberTtlMs, r.successorId, r.successorHash, r.ip, r.userAgent])
  if (!row) return { outcome: 'missing' as const }
  if (row.successor_expires_ms === null) return { outcome: 'not_live' as const }
  return {
    outcome: 'rotated' as const,
    expiresAt: date(row.successor_expires_ms)!,
    session: { id: row.session_id, rememberMe: row.remember_me },
    user: userFromEpochColumns(row),
  }
}
