import type { Clock } from '../clock.js'
import type { Config } from '../config.js'
import type { Aal } from '../db/schema.js'
import type { Database, Executor } from '../db/client.js'
import { ApiError } from '../errors.js'
import { isUuid, uuidv7 } from '../ids.js'
import {
  findSessionState, insertLiveSession, listLiveSessions, lockSession, revokeLiveSession, revokeSession, revokeUserSessions, rotateSession,
} from '../repositories/sessions.js'
import type { SessionView } from '../schemas/account.js'
import type { MfaStatus } from '../schemas/mfa.js'
import type { TokenResponse } from '../schemas/auth.js'
import { toProfile, toPublicUser, type Profile, type UserRow } from '../schemas/common.js'
import type { AccessTokens } from './access-tokens.js'
import type { RefreshTokens } from './refresh-tokens.js'

/** What a sign-in proved: the assurance level (aal1, aal2 ...) and the methods used (RFC 8176: pwd, otp ...). */
export interface Proof { aal: Aal, amr: string[] }
export interface ClientMeta { ip: string | null, userAgent: string | null }
export interface SignIn extends Proof { rememberMe: boolean, client: ClientMeta }

/** The tokens of a sign-in or refresh; `rememberMe` is not sent, it tells cookie mode whether the cookie persists. */
export type IssuedTokens = Required<TokenResponse> & { rememberMe: boolean }

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
    }
  }

  /**
   * Where every way of signing in ends: a new session holding what was proven, and its tokens. Runs in the
   * caller's transaction when given one; `clearAttemptsKey` forgets that key's failed sign-ins in the same
   * statement. Undefined, with no session and nothing cleared, when the account has a second factor and
   * the sign-in proved only `aal1`: the caller then asks for the second factor.
   */
  async open (user: UserRow, signIn: SignIn, options: { ex?: Executor, clearAttemptsKey?: string } = {}): Promise<IssuedTokens | undefined> {
    const now = this.now()
    const id = uuidv7(now.getTime())
    const refreshExpiresAt = await insertLiveSession(options.ex ?? this.deps.db, {
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
    if (!refreshExpiresAt) return undefined
    return this.tokens(user, { id, counter: 0, rememberMe: signIn.rememberMe, refreshExpiresAt, aal: signIn.aal, amr: signIn.amr }, now)
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
  async logout (input: { refreshToken?: string | undefined, scope: 'local' | 'others' | 'global' }, caller: { sub: string, sid: string } | null): Promise<void> {
    if (input.scope !== 'local') {
      if (!caller) throw invalid(`scope "${input.scope}" needs a valid access token`)
      await this.endAll(caller.sub, 'logout', { exceptId: input.scope === 'others' ? caller.sid : undefined })
      return
    }
    const ids = new Set<string>()
    if (caller) ids.add(caller.sid)
    const named = input.refreshToken === undefined ? null : this.deps.refreshTokens.read(input.refreshToken)
    if (named) ids.add(named.sessionId)
    for (const id of ids) await this.end(id, 'logout')
  }

  async list (userId: string, currentSessionId: string): Promise<SessionView[]> {
    const rows = await listLiveSessions(this.deps.db, userId, this.now())
    return rows.map(s => ({
      id: s.id,
      current: s.id === currentSessionId,
      createdAt: s.createdAt.toISOString(),
      lastUsedAt: s.lastUsedAt.toISOString(),
      expiresAt: s.expiresAt.toISOString(),
      rememberMe: s.rememberMe,
      aal: s.aal,
      userAgent: s.userAgent,
      ip: s.ip,
    }))
  }

  /** Ends one of the user's live sessions; 404 for an id that is malformed, unknown, already ended or another user's: ids cannot be probed. */
  async revokeOwn (userId: string, sessionId: string): Promise<void> {
    const revoked = isUuid(sessionId) && await revokeLiveSession(this.deps.db, sessionId.toLowerCase(), userId, 'revoked_by_user', this.now())
    if (!revoked) throw new ApiError('not_found', 'No session of yours has this id')
  }

  /** Ends a session whatever its state (logout is idempotent). */
  end (sessionId: string, reason: string): Promise<number> {
    return revokeSession(this.deps.db, sessionId, reason, this.now())
  }

  /** Ends every session of a user (or every one but `exceptId`) and voids their pending mfaTokens, in the caller's transaction if given. Returns how many ended. */
  endAll (userId: string, reason: string, options: { exceptId?: string | undefined, ex?: Executor } = {}): Promise<number> {
    return revokeUserSessions(options.ex ?? this.deps.db, userId, reason, this.now(), options.exceptId)
  }
}
