import { fromEpochMs as date, statement, type Executor } from '../db/client.js'
import type { Aal } from '../db/schema.js'
import { USER_EPOCH_COLUMNS, userFromEpochColumns, type UserEpochColumns } from './users.js'

// Every session statement is fixed SQL text run through `statement()` (prepared once per connection),
// times passed as ISO text and read back as epoch milliseconds, the same from either driver.

/** The one rule: a session is live while not revoked and within both its absolute and its idle lifetime. */
const live = (now: string) => `(s.revoked_at is null and s.absolute_expires_at > ${now} and s.refresh_expires_at > ${now})`
/** The refresh expiry a sign-in or rotation gives: the idle lifetime, never past the absolute end. */
const nextRefreshExpiry = (idleEnd: string, absoluteEnd: string) => `least(${idleEnd}, ${absoluteEnd})`
const iso = (d: Date) => d.toISOString()

export interface NewSession {
  id: string
  userId: string
  rememberMe: boolean
  now: Date
  absoluteExpiresAt: Date
  /** now + the idle lifetime (REFRESH_TOKEN_TTL or, remembered, REFRESH_TOKEN_REMEMBER_TTL) */
  idleExpiresAt: Date
  aal: Aal
  amr: string[]
  userAgent: string | null
  ip: string | null
  /** Also forgets this key's failed sign-ins (login_throttle), in the same statement. */
  clearAttemptsKey: string | null
}

// Two rules live in this statement. A suspended account gets no session (the user row is read FOR
// SHARE, so a suspension in flight is waited for: a session is either refused or made before the
// suspension ends every session). And no session of an account with a second factor is below aal2: an
// aal1 sign-in of such an account inserts nothing (and clears no count); the factor row is read FOR
// SHARE too, so a confirmation in flight is waited for and its outcome seen, not the state before it.
const insertSession = statement<{ verdict: 'ok' | 'suspended' | 'second_factor', refresh_expires_ms: number | null }>(`
  with verdict as (
    select case
      when (select u.suspended_at is not null and (u.suspended_until is null or u.suspended_until > $4::timestamptz)
            from users u where u.id = $2::uuid for share) then 'suspended'
      when $7::text <> 'aal1' or not coalesce((select f.confirmed_at is not null from totp_factors f where f.user_id = $2::uuid for share), false) then 'ok'
      else 'second_factor' end as v
  ), cleared as (delete from login_throttle where key = $11::text and (select v from verdict) = 'ok'),
  inserted as (
    insert into sessions (id, user_id, remember_me, created_at, last_used_at, absolute_expires_at, refresh_counter, refresh_expires_at, aal, amr, user_agent, ip)
    select $1::uuid, $2::uuid, $3::boolean, $4::timestamptz, $4::timestamptz, $5::timestamptz, 0,
           ${nextRefreshExpiry('$6::timestamptz', '$5::timestamptz')}, $7::text, $8::text[], $9::text, $10::text
    from verdict where v = 'ok'
    returning extract(epoch from refresh_expires_at)::float8 * 1000 as refresh_expires_ms)
  select (select v from verdict) as verdict, (select refresh_expires_ms from inserted) as refresh_expires_ms`)

/**
 * A new session at counter 0, in one statement (inside the caller's transaction, if any). Returns its
 * refresh expiry; or, with no session made, `suspended` for a suspended account and `second_factor` when
 * the account has a second factor and the sign-in proved only one.
 */
export async function insertLiveSession (ex: Executor, s: NewSession): Promise<Date | 'suspended' | 'second_factor'> {
  const [row] = await insertSession(ex, [s.id, s.userId, s.rememberMe, iso(s.now), iso(s.absoluteExpiresAt), iso(s.idleExpiresAt), s.aal, s.amr, s.userAgent, s.ip, s.clearAttemptsKey])
  if (row!.verdict !== 'ok') return row!.verdict
  return date(row!.refresh_expires_ms)!
}

interface SessionUserRow extends UserEpochColumns {
  refresh_counter: number
  remember_me: boolean
  refresh_expires_ms: number
  aal: Aal
  amr: string[]
}
const SESSION_USER_COLUMNS = `s.refresh_counter, s.remember_me, extract(epoch from s.refresh_expires_at)::float8 * 1000 as refresh_expires_ms,
  s.aal, s.amr, ${USER_EPOCH_COLUMNS}`
const sessionUser = (row: SessionUserRow) => ({
  counter: row.refresh_counter, rememberMe: row.remember_me, refreshExpiresAt: date(row.refresh_expires_ms)!, aal: row.aal, amr: row.amr, user: userFromEpochColumns(row),
})
export type SessionWithUser = ReturnType<typeof sessionUser>

const rotate = statement<SessionUserRow>(`
  update sessions s
  set refresh_counter = s.refresh_counter + 1, last_used_at = $3::timestamptz,
      refresh_expires_at = ${nextRefreshExpiry('(case when s.remember_me then $5::timestamptz else $4::timestamptz end)', 's.absolute_expires_at')},
      ip = $6::text, user_agent = $7::text
  from users u
  where s.id = $1::uuid and s.refresh_counter = $2::integer and u.id = s.user_id and ${live('$3::timestamptz')}
  returning ${SESSION_USER_COLUMNS}`)

/**
 * Moves a live session's counter from `counter` to the next, in one statement; undefined when the session
 * is not live or its counter has moved on (a concurrent rotation waits for the row, then finds it moved).
 */
export async function rotateSession (ex: Executor, r: {
  sessionId: string, counter: number, now: Date, idleExpiresAt: Date, rememberExpiresAt: Date, ip: string | null, userAgent: string | null
}) {
  const [row] = await rotate(ex, [r.sessionId, r.counter, iso(r.now), iso(r.idleExpiresAt), iso(r.rememberExpiresAt), r.ip, r.userAgent])
  return row && sessionUser(row)
}

const lock = statement<SessionUserRow & { live: boolean, revoked: boolean, last_used_ms: number }>(`
  select ${live('$2::timestamptz')} as live, s.revoked_at is not null as revoked,
         extract(epoch from s.last_used_at)::float8 * 1000 as last_used_ms, ${SESSION_USER_COLUMNS}
  from sessions s join users u on u.id = s.user_id
  where s.id = $1::uuid
  for update of s`)

/** The session and its user, the session row locked until the transaction ends. */
export async function lockSession (ex: Executor, sessionId: string, now: Date) {
  const [row] = await lock(ex, [sessionId, iso(now)])
  return row && { ...sessionUser(row), live: row.live, revoked: row.revoked, lastUsedAt: date(row.last_used_ms)! }
}

const current = statement<UserEpochColumns & { live: boolean, revoked: boolean, aal: Aal, amr: string[], signed_in_ms: number, totp: boolean, recovery_codes_left: number, passkeys: number }>(`
  select ${live('$3::timestamptz')} as live, s.revoked_at is not null as revoked, s.aal, s.amr, extract(epoch from s.created_at)::float8 * 1000 as signed_in_ms, ${USER_EPOCH_COLUMNS},
         f.confirmed_at is not null as totp, coalesce(cardinality(f.recovery_codes), 0)::int as recovery_codes_left,
         (select count(*)::int from passkeys p where p.user_id = s.user_id) as passkeys
  from sessions s join users u on u.id = s.user_id left join totp_factors f on f.user_id = s.user_id and f.confirmed_at is not null
  where s.id = $1::uuid and s.user_id = $2::uuid`)

/** One lookup by primary key, on every authenticated request: the session's state, its user and their second factors. */
export async function findSessionState (ex: Executor, sessionId: string, userId: string, now: Date) {
  const [row] = await current(ex, [sessionId, userId, iso(now)])
  return row && {
    live: row.live, revoked: row.revoked, aal: row.aal, amr: row.amr, signedInAt: date(row.signed_in_ms)!, user: userFromEpochColumns(row), mfa: { totp: row.totp, recoveryCodesLeft: row.recovery_codes_left, passkeys: row.passkeys },
  }
}

interface ListedRow { id: string, created_ms: number, last_used_ms: number, refresh_expires_ms: number, remember_me: boolean, user_agent: string | null, ip: string | null, aal: Aal }
const list = statement<ListedRow>(`
  select s.id, extract(epoch from s.created_at)::float8 * 1000 as created_ms, extract(epoch from s.last_used_at)::float8 * 1000 as last_used_ms,
         extract(epoch from s.refresh_expires_at)::float8 * 1000 as refresh_expires_ms, s.remember_me, s.user_agent, s.ip, s.aal
  from sessions s
  where s.user_id = $1::uuid and ${live('$2::timestamptz')} and ($4::uuid is null or s.id < $4::uuid)
  order by s.id desc
  limit $3::int`)

/** A page of the user's live sessions, newest first (ids are UUIDv7), after `cursor`. */
export async function listLiveSessions (ex: Executor, userId: string, now: Date, limit: number, cursor?: string) {
  return (await list(ex, [userId, iso(now), limit, cursor ?? null])).map(r => ({
    id: r.id, createdAt: date(r.created_ms)!, lastUsedAt: date(r.last_used_ms)!, expiresAt: date(r.refresh_expires_ms)!, rememberMe: r.remember_me, userAgent: r.user_agent, ip: r.ip, aal: r.aal,
  }))
}

const revokeLive = statement<{ id: string }>(`
  update sessions s set revoked_at = $3::timestamptz, revoked_reason = $4::text
  where s.id = $1::uuid and s.user_id = $2::uuid and ${live('$3::timestamptz')}
  returning s.id`)

/** Ends one live session of this user; false when there is none by that id (unknown, ended, or someone else's). */
export async function revokeLiveSession (ex: Executor, sessionId: string, userId: string, reason: string, now: Date): Promise<boolean> {
  return (await revokeLive(ex, [sessionId, userId, iso(now), reason])).length > 0
}

const revokeOne = statement<{ id: string, user_id: string }>(`
  update sessions set revoked_at = $2::timestamptz, revoked_reason = $3::text where id = $1::uuid and revoked_at is null returning id, user_id`)

/** Ends a session whatever its state; a second call changes nothing. Returns its user when it ended now. */
export async function revokeSession (ex: Executor, sessionId: string, reason: string, now: Date): Promise<string | undefined> {
  const [row] = await revokeOne(ex, [sessionId, iso(now), reason])
  return row?.user_id
}

const revokeOfUser = statement<{ id: string }>(`
  with pending as (delete from mfa_challenges where user_id = $1::uuid)
  update sessions set revoked_at = $2::timestamptz, revoked_reason = $3::text
  where user_id = $1::uuid and revoked_at is null and ($4::uuid is null or id <> $4::uuid)
  returning id`)

/**
 * Ends every session of a user, or every one but `exceptId`, and any sign-in of theirs still waiting for
 * its second factor (its mfaToken then opens nothing). Returns how many sessions ended.
 */
export async function revokeUserSessions (ex: Executor, userId: string, reason: string, now: Date, exceptId?: string): Promise<string[]> {
  return (await revokeOfUser(ex, [userId, iso(now), reason, exceptId ?? null])).map(r => r.id)
}

const raise = statement<{ id: string }>('update sessions set aal = $2::text, amr = $3::text[] where id = $1::uuid returning id')

/** Records a factor proven during a session (TOTP confirmed in it): its new assurance level and methods. */
export async function raiseSessionAssurance (ex: Executor, sessionId: string, aal: Aal, amr: string[]): Promise<void> {
  await raise(ex, [sessionId, aal, amr])
}
