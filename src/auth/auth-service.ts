import { uuidv7 } from '../ids.js'
import type { Config } from '../config.js'
import type { Role } from '../db/schema.js'
import type { Database, Executor } from '../db/client.js'
import { ApiError, type ProblemCode } from '../errors.js'
import { findChildToken, findSessionOfToken, lockRefreshToken, rotateIfLive, rotateRefreshToken } from '../repositories/refresh-tokens.js'
import { openSession, revokeSession, revokeUserSessions } from '../repositories/sessions.js'
import { findUserByEmail, findUserByUsername, insertUser } from '../repositories/users.js'
import { assertPasswordPolicy, codePoints, dummyHash, hashPassword, MAX_PASSWORD_LENGTH, normalizePassword, verifyPassword } from './passwords.js'
import { hashRefreshToken, isWellFormedRefreshToken, newRefreshToken, successorOf } from './refresh-token-crypto.js'
import type { LoginThrottle } from './login-throttle.js'
import { throttled } from './throttle.js'
import { queueVerification } from './email-service.js'

export type Clock = () => number

export interface UserRow { id: string, email: string, username: string | null, name: string | null, role: Role, emailVerifiedAt: Date | null, createdAt: Date }
/** The `user` of a token response. */
export interface PublicUser { id: string, email: string, username: string | null, name: string | null, createdAt: string }
/** What /me and PATCH /me answer: the public user with its role and verification state. */
export interface Profile extends PublicUser { role: Role, emailVerified: boolean }
export interface ClientMeta { ip: string | null, userAgent: string | null }
export interface AccessClaims { sub: string, sid: string }

export interface TokenResponse {
  tokenType: 'Bearer'
  accessToken: string
  expiresIn: number
  refreshToken: string
  refreshExpiresIn: number
  user: PublicUser
  /** Not sent: tells cookie mode whether the cookie is persistent. */
  rememberMe: boolean
}

interface IssuedSession { sessionId: string, rememberMe: boolean, token: string, expiresAt: Date }

export interface AuthServiceDeps {
  db: Database
  config: Config
  clock: Clock
  refreshSecret: Buffer
  throttle: LoginThrottle
  /** Signs an access token; `iat` is taken from the clock. */
  signAccessToken: (claims: { sub: string, sid: string, jti: string, iat: number, role: Role, email_verified: boolean }) => string
  /** Derives the tokens mailed for verification. */
  mailSecret: Buffer
  /** Wakes the mail sender after a commit that queued mail. */
  mailQueued: () => void
}

export const toPublicUser = (u: UserRow): PublicUser => ({ id: u.id, email: u.email, username: u.username, name: u.name, createdAt: u.createdAt.toISOString() })
export const toProfile = (u: UserRow): Profile => ({ ...toPublicUser(u), role: u.role, emailVerified: u.emailVerifiedAt !== null })
const seconds = (ms: number) => Math.max(0, Math.floor(ms / 1000))

/** Postgres unique violations become the contract's 409s, whichever driver raised them. */
export function conflictFrom (err: unknown): ApiError | undefined {
  for (let e = err as { code?: unknown, constraint?: unknown, constraint_name?: unknown, cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e.code === '23505') {
      const constraint = String(e.constraint_name ?? e.constraint ?? '')
      if (constraint.includes('username')) return new ApiError('username_taken', 'This username is already taken', { cause: err })
      return new ApiError('email_taken', 'An account with this email already exists', { cause: err })
    }
  }
  return undefined
}

type RefreshOutcome =
  | { ok: true, user: UserRow, session: IssuedSession }
  | { ok: false, code: ProblemCode, detail: string }

export class AuthService {
  constructor (private readonly deps: AuthServiceDeps) {}

  private now () { return new Date(this.deps.clock()) }

  private idleTtlMs (rememberMe: boolean) {
    const r = this.deps.config.refresh
    return (rememberMe ? r.rememberTtl : r.ttl) * 1000
  }

  private tokenResponse (user: UserRow, session: IssuedSession, now: Date): TokenResponse {
    const accessToken = this.deps.signAccessToken({
      sub: user.id, sid: session.sessionId, jti: uuidv7(), iat: Math.floor(now.getTime() / 1000), role: user.role, email_verified: user.emailVerifiedAt !== null,
    })
    return {
      tokenType: 'Bearer',
      accessToken,
      expiresIn: this.deps.config.jwt.accessTokenTtl,
      refreshToken: session.token,
      refreshExpiresIn: seconds(session.expiresAt.getTime() - now.getTime()),
      user: toPublicUser(user),
      rememberMe: session.rememberMe,
    }
  }

  /** A new session with its first refresh token, in one statement (inside the caller's transaction, if any). */
  private async startSession (ex: Executor, userId: string, rememberMe: boolean, meta: ClientMeta, now: Date, clearThrottleKey?: string): Promise<IssuedSession> {
    const sessionId = uuidv7()
    const absoluteExpiresAt = new Date(now.getTime() + this.deps.config.refresh.absoluteTtl * 1000)
    const expiresAt = new Date(Math.min(now.getTime() + this.idleTtlMs(rememberMe), absoluteExpiresAt.getTime()))
    const token = newRefreshToken()
    await openSession(ex, { id: sessionId, userId, rememberMe, createdAt: now, lastUsedAt: now, absoluteExpiresAt, userAgent: meta.userAgent, ip: meta.ip },
      { id: uuidv7(), tokenHash: hashRefreshToken(token), expiresAt }, clearThrottleKey)
    return { sessionId, rememberMe, token, expiresAt }
  }

  async register (input: { email: string, password: string, username?: string | undefined, name?: string | undefined, rememberMe?: boolean | undefined }, meta: ClientMeta): Promise<TokenResponse> {
    const password = normalizePassword(input.password)
    assertPasswordPolicy(password, { minLength: this.deps.config.passwordMinLength, email: input.email, username: input.username })
    const passwordHash = await hashPassword(password)
    const now = this.now()
    try {
      const { user, session } = await this.deps.db.transaction(async tx => {
        const user = await insertUser(tx, {
          id: uuidv7(), email: input.email, username: input.username ?? null, name: input.name || null, passwordHash, createdAt: now, updatedAt: now,
        })
        // the verification mail is queued with the account: both or neither
        await queueVerification(tx, this.deps, user, now)
        return { user, session: await this.startSession(tx, user.id, input.rememberMe ?? false, meta, now) }
      })
      this.deps.mailQueued()
      return this.tokenResponse(user, session, now)
    } catch (err) {
      throw conflictFrom(err) ?? err
    }
  }

  async login (input: { email?: string | undefined, username?: string | undefined, password: string, rememberMe?: boolean | undefined }, meta: ClientMeta): Promise<TokenResponse> {
    const { db, config } = this.deps
    const now = this.now()
    const user = input.email !== undefined ? await findUserByEmail(db, input.email) : await findUserByUsername(db, input.username!)
    // Keyed by the account when it exists, so email and username share one count; by the identifier otherwise.
    const key = user ? `user:${user.id}` : input.email !== undefined ? `email:${input.email}` : `username:${input.username!.toLowerCase()}`
    const gate = await this.deps.throttle.reserve(key, now)
    if (!gate.allowed) {
      throw throttled(gate.retryAfterSeconds, config.rateLimit.loginAccount, 'Too many failed sign-in attempts for this account; try again later')
    }
    const password = normalizePassword(input.password)
    // A password no account can have is refused without hashing; the answer is the same.
    const valid = codePoints(password) <= MAX_PASSWORD_LENGTH &&
      await verifyPassword(user?.passwordHash ?? await dummyHash(), password)
    if (!valid || !user) throw new ApiError('invalid_credentials', 'The email, username or password is not correct')
    // The right password forgets the failures counted so far. A count kept in this database is
    // cleared by the statement that opens the session (one round trip and one commit, not three).
    const { throttle } = this.deps
    // after the password check, so it tells nothing to someone without the password
    if (config.mail.requireVerification && !user.emailVerifiedAt) {
      await throttle.clear(key)
      throw new ApiError('email_not_verified', 'Verify your email address first: follow the link we sent, or ask for a new one')
    }
    if (!throttle.inDatabase) await throttle.clear(key)
    const session = await this.startSession(db, user.id, input.rememberMe ?? false, meta, now, throttle.inDatabase ? key : undefined)
    return this.tokenResponse(user, session, now)
  }

  async refresh (token: string, meta: ClientMeta): Promise<TokenResponse> {
    if (!isWellFormedRefreshToken(token)) throw new ApiError('invalid_token', 'The refresh token is not valid')
    const now = this.now()
    const tokenHash = hashRefreshToken(token)
    const successor = successorOf(this.deps.refreshSecret, token)
    // The usual case, a live token, is rotated by one statement; anything else is decided below.
    const fast = await rotateIfLive(this.deps.db, {
      tokenHash,
      now,
      idleTtlMs: this.idleTtlMs(false),
      rememberTtlMs: this.idleTtlMs(true),
      successorId: uuidv7(),
      successorHash: hashRefreshToken(successor),
      ...meta,
    })
    if (fast.outcome === 'missing') throw new ApiError('invalid_token', 'The refresh token is not valid')
    if (fast.outcome === 'rotated') {
      return this.tokenResponse(fast.user, { sessionId: fast.session.id, rememberMe: fast.session.rememberMe, token: successor, expiresAt: fast.expiresAt }, now)
    }
    // Outcomes are returned, not thrown, so a reuse revocation commits before the 401 leaves.
    const outcome = await this.deps.db.transaction(async (tx): Promise<RefreshOutcome> => {
      const row = await lockRefreshToken(tx, tokenHash)
      if (!row) return { ok: false, code: 'invalid_token', detail: 'The refresh token is not valid' }
      const { session, user } = row
      if (session.revokedAt) return { ok: false, code: 'session_revoked', detail: 'The session has ended; sign in again' }
      if (session.absoluteExpiresAt <= now) return { ok: false, code: 'invalid_token', detail: 'The session has expired; sign in again' }
      if (row.token.spentAt) {
        const child = await findChildToken(tx, row.token.id)
        const graceMs = this.deps.config.refresh.reuseGraceSeconds * 1000
        if (child && !child.spentAt && child.expiresAt > now && now.getTime() - row.token.spentAt.getTime() <= graceMs) {
          // a retry or a second tab: the same successor again
          return { ok: true, user, session: { sessionId: session.id, rememberMe: session.rememberMe, token: successor, expiresAt: child.expiresAt } }
        }
        await revokeSession(tx, session.id, 'refresh_token_reused', now)
        return { ok: false, code: 'refresh_token_reused', detail: 'This refresh token was already used; the session has been ended for safety' }
      }
      if (row.token.expiresAt <= now) return { ok: false, code: 'invalid_token', detail: 'The refresh token has expired; sign in again' }
      const expiresAt = new Date(Math.min(now.getTime() + this.idleTtlMs(session.rememberMe), session.absoluteExpiresAt.getTime()))
      await rotateRefreshToken(tx, {
        spentId: row.token.id, sessionId: session.id, successorId: uuidv7(), successorHash: hashRefreshToken(successor), now, expiresAt, ...meta,
      })
      return { ok: true, user, session: { sessionId: session.id, rememberMe: session.rememberMe, token: successor, expiresAt } }
    })
    if (!outcome.ok) throw new ApiError(outcome.code, outcome.detail)
    return this.tokenResponse(outcome.user, outcome.session, now)
  }

  /**
   * Idempotent. `local` ends the session named by the refresh token and/or the access token's `sid`;
   * `others` and `global` need an authenticated caller.
   */
  async logout (input: { refreshToken?: string | undefined, scope: 'local' | 'others' | 'global' }, caller: AccessClaims | null): Promise<void> {
    const { db } = this.deps
    const now = this.now()
    if (input.scope === 'others' || input.scope === 'global') {
      if (!caller) throw new ApiError('invalid_token', `scope "${input.scope}" needs a valid access token`)
      await revokeUserSessions(db, caller.sub, 'logout', now, input.scope === 'others' ? caller.sid : undefined)
      return
    }
    const ids = new Set<string>()
    if (caller) ids.add(caller.sid)
    if (input.refreshToken !== undefined && isWellFormedRefreshToken(input.refreshToken)) {
      const owner = await findSessionOfToken(db, hashRefreshToken(input.refreshToken))
      if (owner) ids.add(owner.sessionId)
    }
    for (const id of ids) await revokeSession(db, id, 'logout', now)
  }
}
