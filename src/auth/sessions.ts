import type { Clock } from '../clock.js'
import type { Config } from '../config.js'
import type { Aal } from '../db/schema.js'
import { pageOf, type Database, type Executor } from '../db/client.js'
import { ApiError } from '../errors.js'
import { isUuid, uuidv7 } from '../ids.js'
import {
  findSessionState, insertLiveSession, listLiveSessions, lockSession, revokeLiveSession, revokeSession, revokeUserSessions, rotateSession,
} from '../repositories/sessions.js'
import type { SessionView } from '../schemas/account.js'
import type { MfaStatus } from '../schemas/mfa.js'
import type { TokenResponse } from '../schemas/auth.js'
import { toProfile, toPublicUser, type Profile, type UserRow } from '../schemas/common.js'
import { findUserById } from '../repositories/users.js'
import type { AccessTokens } from './access-tokens.js'
import type { RefreshTokens } from './refresh-tokens.js'
import type { ClientMeta, EventSource, SecurityEvents } from './security-events.js'

/** What a sign-in proved: the assurance level (aal1, aal2 ...) and the methods used (RFC 8176: pwd, otp ...). */
export interface Proof { aal: Aal, amr: string[] }
export type { ClientMeta } from './security-events.js'
/** How a sign-in was made, for the security history. */
export type SignInMethod = 'register' | 'password' | 'totp' | 'recovery_code' | 'passkey' | 'provider'
export interface SignIn extends Proof { rememberMe: boolean, client: ClientMeta, method: SignInMethod, detail?: Record<string, unknown> }

/** The tokens of a sign-in or refresh; `rememberMe` is not sent, it tells cookie mode whether the cookie persists. */
export type IssuedTokens = Required<TokenResponse> & { rememberMe: boolean, sessionId: string }

/** The signed-in caller of an authenticated request, read from the session on every request. */
export interface Principal extends Proof {
  user: Profile
  sessionId: string
  /** when the session's sign-in happened (refreshes keep it) */
  signedInAt: Date
  mfa: MfaStatus
}

export interface SessionServiceDeps {
  db: Database
  config: Config
  clock: Clock
  accessTokens: AccessTokens
  refreshTokens: RefreshTokens
  events: SecurityEvents
}

const invalid = (detail: string) => new ApiError('invalid_token', detail)
const seconds = (ms: number) => Math.max(0, Math.floor(ms / 1000))

/**
 * The session rules, in one place: opening a session for what a sign-in proved, rotating its refresh
 * token, the liveness every authenticated request checks, listing and ending sessions.
 */
export class SessionService {
  constructor (private readonly deps: SessionServiceDeps) {}

  private now () { return new Date(this.deps.clock()) }

  /** now + the idle lifetime: REFRESH_TOKEN_TTL, or REFRESH_TOKEN_REMEMBER_TTL for a remembered session. */
  private idleEnd (now: Date, rememberMe: boolean) {
    const r = this.deps.config.refresh
    return new Date(now.getTime() + (rememberMe ? r.rememberTtl : r.ttl) * 1000)
  }

  private tokens (user: UserRow, session: { id: string, counter: number, rememberMe: boolean, refreshExpiresAt: Date } & Proof, now: Date): IssuedTokens {
    const { accessTokens, refreshTokens, config } = this.deps
    const accessToken = accessTokens.sign({
      sub: user.id,
      sid: session.id,
      jti: uuidv7(),
      iat: Math.floor(now.getTime() / 1000),
      role: user.role,
      email_verified: user.emailVerifiedAt !== null,
      aal: session.aal,
      amr: session.amr,
    })
    return {
      tokenType: 'Bearer',
      accessToken,
      expiresIn: config.jwt.accessTokenTtl,
      refreshToken: refreshTokens.issue(session.id, session.counter),
      refreshExpiresIn: seconds(session.refreshExpiresAt.getTime() - now.getTime()),
      user: toPublicUser(user),
      rememberMe: session.rememberMe,
      sessionId: session.id,
    }
  }

  /**
   * Where every way of signing in ends: a new session holding what was proven, its tokens, the sign-in in
   * the security history and the session.created webhook, in one transaction (the caller's when given).
   * `clearAttemptsKey` forgets that key's failed sign-ins in the same statement. With no session made and
   * nothing cleared: `second_factor` when the account has a second factor and the sign-in proved only
   * `aal1` (the caller asks for it), `suspended` for a suspended account.
   */
  async open (user: UserRow, signIn: SignIn, options: { ex?: Executor, clearAttemptsKey?: string } = {}): Promise<IssuedTokens | 'second_factor' | 'suspended'> {
    const { events } = this.deps
    const now = this.now()
    const id = uuidv7(now.getTime())
    const work = async (ex: Executor) => {
      const outcome = await insertLiveSession(ex, {
        id,
        userId: user.id,
        rememberMe: signIn.rememberMe,
        now,
        absoluteExpiresAt: new Date(now.getTime() + this.deps.config.refresh.absoluteTtl * 1000),
        idleExpiresAt: this.idleEnd(now, signIn.rememberMe),
        aal: signIn.aal,
        amr: signIn.amr,
        userAgent: signIn.client.userAgent,
        ip: signIn.client.ip,
        clearAttemptsKey: options.clearAttemptsKey ?? null,
      })
      if (!(outcome instanceof Date)) return outcome
      await events.record(ex, signIn.method === 'register' ? 'register' : 'login_success', user.id, { ...signIn.client, sessionId: id }, {
        method: signIn.method, aal: signIn.aal, amr: signIn.amr, ...signIn.detail,
      })
      await events.webhook(ex, 'session.created', user, { id })
      return outcome
    }
    const outcome = options.ex ? await work(options.ex) : await this.deps.db.transaction(work)
    if (!(outcome instanceof Date)) return outcome
    if (!options.ex && events.wants('session.created')) events.queued()
    return this.tokens(user, { id, counter: 0, rememberMe: signIn.rememberMe, refreshExpiresAt: outcome, aal: signIn.aal, amr: signIn.amr }, now)
  }

  /**
   * Spends a refresh token for the next. The live case is one statement; anything else is decided with the
   * session locked: within REFRESH_REUSE_GRACE_SECONDS the token just spent gets its successor again (every
   * racer and retry the same one), any older token ends the session (refresh_token_reused).
   */
  async refresh (token: string, client: ClientMeta): Promise<IssuedTokens> {
    const claims = this.deps.refreshTokens.read(token)
    if (!claims) throw invalid('The refresh token is not valid')
    const now = this.now()
    const rotation = {
      sessionId: claims.sessionId, counter: claims.counter, now, idleExpiresAt: this.idleEnd(now, false), rememberExpiresAt: this.idleEnd(now, true), ...client,
    }
    const rotated = await rotateSession(this.deps.db, rotation)
    if (rotated) return this.tokens(rotated.user, { id: claims.sessionId, ...rotated }, now)
    // Decisions are returned, not thrown, so a reuse revocation commits before the 401 leaves.
    const outcome = await this.deps.db.transaction(async tx => {
      const session = await lockSession(tx, claims.sessionId, now)
      if (!session) return invalid('The refresh token is not valid')
      if (session.revoked) return new ApiError('session_revoked', 'The session has ended; sign in again')
      if (!session.live) return invalid('The session has expired; sign in again')
      if (claims.counter === session.counter) {
        // rotated by someone else between the statement and the lock: it is live, so rotate it here
        const again = await rotateSession(tx, rotation)
        return again ?? invalid('The refresh token is not valid')
      }
      const graceMs = this.deps.config.refresh.reuseGraceSeconds * 1000
      if (claims.counter === session.counter - 1 && now.getTime() - session.lastUsedAt.getTime() <= graceMs) {
        // a retry or a second tab: the same successor again
        return session
      }
      if (claims.counter > session.counter) return invalid('The refresh token is not valid')
      await revokeSession(tx, claims.sessionId, 'refresh_token_reused', now)
      await this.deps.events.record(tx, 'refresh_reuse', session.user.id, { ...client, sessionId: claims.sessionId }, { sessionRevoked: true })
      await this.sessionRevoked(tx, session.user, claims.sessionId)
      return new ApiError('refresh_token_reused', 'This refresh token was already used; the session has been ended for safety')
    })
    if (outcome instanceof ApiError) throw outcome
    return this.tokens(outcome.user, { id: claims.sessionId, ...outcome }, now)
  }

  /** The caller of an access token if its session is live, else why not: revocation and expiry take effect at once. */
  async principal (claims: { sub: string, sid: string }): Promise<Principal | 'revoked' | 'ended'> {
    const state = await findSessionState(this.deps.db, claims.sid, claims.sub, this.now())
    if (!state?.live) return state?.revoked ? 'revoked' : 'ended'
    return { user: toProfile(state.user), sessionId: claims.sid, aal: state.aal, amr: state.amr, signedInAt: state.signedInAt, mfa: state.mfa }
  }

  /**
   * Idempotent. `local` ends the session named by the refresh token (whatever its counter) and/or the
   * access token's `sid`; `others` and `global` need an authenticated caller.
   */
  async logout (input: { refreshToken?: string | undefined, scope: 'local' | 'others' | 'global' }, caller: { sub: string, sid: string } | null, client: ClientMeta): Promise<void> {
    const source = { ...client, sessionId: caller?.sid ?? null }
    if (input.scope !== 'local') {
      if (!caller) throw invalid(`scope "${input.scope}" needs a valid access token`)
      await this.deps.db.transaction(async tx => {
        const ended = await this.endAll(caller.sub, 'logout', { exceptId: input.scope === 'others' ? caller.sid : undefined, ex: tx })
        await this.deps.events.record(tx, 'logout', caller.sub, source, { scope: input.scope, sessionsEnded: ended })
      })
      this.deps.events.queued()
      return
    }
    const ids = new Set<string>()
    if (caller) ids.add(caller.sid)
    const named = input.refreshToken === undefined ? null : this.deps.refreshTokens.read(input.refreshToken)
    if (named) ids.add(named.sessionId)
    for (const id of ids) {
      await this.deps.db.transaction(async tx => {
        const userId = await revokeSession(tx, id, 'logout', this.now())
        if (!userId) return
        await this.deps.events.record(tx, 'logout', userId, { ...client, sessionId: id }, { scope: 'local' })
        await this.sessionRevoked(tx, userId, id)
      })
    }
    if (ids.size) this.deps.events.queued()
  }

  async list (userId: string, currentSessionId: string, page: { limit: number, cursor?: string | undefined }): Promise<{ sessions: SessionView[], nextCursor: string | null }> {
    const cursor = page.cursor?.toLowerCase()
    const { items, nextCursor } = pageOf(await listLiveSessions(this.deps.db, userId, this.now(), page.limit + 1, cursor), page.limit)
    return {
      sessions: items.map(s => ({
        id: s.id,
        current: s.id === currentSessionId,
        createdAt: s.createdAt.toISOString(),
        lastUsedAt: s.lastUsedAt.toISOString(),
        expiresAt: s.expiresAt.toISOString(),
        rememberMe: s.rememberMe,
        aal: s.aal,
        userAgent: s.userAgent,
        ip: s.ip,
      })),
      nextCursor,
    }
  }

  /** Ends one of the user's live sessions; 404 for an id that is malformed, unknown, already ended or another user's: ids cannot be probed. */
  async revokeOwn (userId: string, sessionId: string, source: EventSource): Promise<void> {
    const id = sessionId.toLowerCase()
    const revoked = isUuid(sessionId) && await this.deps.db.transaction(async tx => {
      if (!await revokeLiveSession(tx, id, userId, 'revoked_by_user', this.now())) return false
      await this.deps.events.record(tx, 'session_revoked', userId, source, { revokedSessionId: id, current: id === source.sessionId })
      await this.sessionRevoked(tx, userId, id)
      return true
    })
    if (!revoked) throw new ApiError('not_found', 'No session of yours has this id')
    this.deps.events.queued()
  }

  /**
   * Ends every session of a user (or every one but `exceptId`) and voids their pending mfaTokens, in the
   * caller's transaction if given, with a session.revoked webhook each. Returns how many ended.
   */
  async endAll (userId: string, reason: string, options: { exceptId?: string | undefined, ex?: Executor } = {}): Promise<number> {
    const ex = options.ex ?? this.deps.db
    const ids = await revokeUserSessions(ex, userId, reason, this.now(), options.exceptId)
    if (ids.length && this.deps.events.wants('session.revoked')) {
      const user = await findUserById(ex, userId)
      if (user) for (const id of ids) await this.deps.events.webhook(ex, 'session.revoked', user, { id })
      if (!options.ex) this.deps.events.queued()
    }
    return ids.length
  }

  /** The session.revoked webhook of one session (the user read only when webhooks want it). */
  private async sessionRevoked (ex: Executor, user: string | UserRow, sessionId: string) {
    if (!this.deps.events.wants('session.revoked')) return
    const row = typeof user === 'string' ? await findUserById(ex, user) : user
    if (row) await this.deps.events.webhook(ex, 'session.revoked', row, { id: sessionId })
  }
}
