import { randomUUID } from 'node:crypto'
import type { Clock } from '../clock.js'
import type { Config } from '../config.js'
import { uniqueViolation, type Database } from '../db/client.js'
import { ApiError } from '../errors.js'
import { isUuid } from '../ids.js'
import { emailTokenFor, hashEmailToken, isWellFormedEmailToken } from '../mail/tokens.js'
import { insertEmailToken, lockUsableEmailToken, markEmailTokenUsed, voidEmailTokens } from '../repositories/email-tokens.js'
import { enqueueMail } from '../repositories/outbox.js'
import { deleteUser, findUserByEmail, findUserById, listUsers, updateUser } from '../repositories/users.js'
import type { AdminUserView } from '../schemas/admin.js'
import { toProfile, type Profile } from '../schemas/common.js'
import { accountKey, type AttemptThrottle } from './attempt-throttle.js'
import { assertPasswordPolicy, codePoints, hashPassword, MAX_PASSWORD_LENGTH, normalizePassword, verifyPassword } from './passwords.js'
import type { EventSource, SecurityEvents } from './security-events.js'
import type { SessionService } from './sessions.js'
import { conflictFrom } from './sign-in.js'
import { throttled } from './throttle.js'

/** How recent a sign-in must be to stand in for the password of an account that has none. */
export const REAUTHENTICATION_WINDOW_MS = 10 * 60_000

export interface AccountServiceDeps {
  db: Database
  config: Config
  clock: Clock
  sessions: SessionService
  /** The per-account sign-in count: a wrong current password counts toward it. */
  throttle: AttemptThrottle
  events: SecurityEvents
  /** the key email links are derived with */
  mailSecret: Buffer
}

const changeInvalid = () => new ApiError('email_change_token_invalid', 'This link is not valid, was already used, was replaced by a newer one or has expired; ask for a new one')

/** A signed-in user managing their own account, and an admin managing others. */
export class AccountService {
  constructor (private readonly deps: AccountServiceDeps) {}

  private now () { return new Date(this.deps.clock()) }

  async updateProfile (userId: string, changes: { name?: string | null | undefined, username?: string | null | undefined }, source: EventSource): Promise<Profile> {
    const set: { name?: string | null, username?: string | null, updatedAt: Date } = { updatedAt: this.now() }
    if (changes.name !== undefined) set.name = changes.name || null
    if (changes.username !== undefined) set.username = changes.username
    let user
    try {
      user = await this.deps.db.transaction(async tx => {
        const updated = await updateUser(tx, userId, set)
        if (updated) {
          await this.deps.events.record(tx, 'profile_updated', userId, source, { fields: Object.keys(changes) })
          await this.deps.events.webhook(tx, 'user.updated', updated)
        }
        return updated
      })
    } catch (err) {
      throw conflictFrom(err) ?? err
    }
    this.deps.events.queued()
    if (!user) throw new ApiError('invalid_token', 'The account of this token no longer exists')
    return toProfile(user)
  }

  /**
   * The current password, checked as a sign-in is: the attempt counts toward the per-account limit
   * before the hash is computed, so a locked account answers 429 without it. A success clears the count.
   * An account without a password (made through an identity provider) proves itself by a recent sign-in
   * instead: the session's, within REAUTHENTICATION_WINDOW_MS.
   */
  private async confirmOwner (userId: string, currentPassword: string | undefined, signedInAt: Date) {
    const { db, throttle, config } = this.deps
    const user = await findUserById(db, userId)
    if (!user) throw new ApiError('invalid_token', 'The account of this token no longer exists')
    if (user.passwordHash === null && currentPassword === undefined) {
      if (this.now().getTime() - signedInAt.getTime() > REAUTHENTICATION_WINDOW_MS) {
        throw new ApiError('reauthentication_required', 'This account has no password: sign in again (within the last 10 minutes) to do this')
      }
      return user
    }
    if (currentPassword === undefined) {
      throw new ApiError('validation_failed', 'currentPassword is required', { errors: [{ path: '/currentPassword', message: 'is required' }] })
    }
    const key = accountKey(userId)
    const gate = await throttle.reserve(key, this.now())
    if (!gate.allowed) {
      throw throttled(gate.retryAfterSeconds, config.rateLimit.loginAccount, 'Too many wrong passwords for this account; try again later')
    }
    const password = normalizePassword(currentPassword)
    const valid = user.passwordHash !== null && codePoints(password) <= MAX_PASSWORD_LENGTH && await verifyPassword(user.passwordHash, password)
    if (!valid) {
      throw new ApiError('current_password_incorrect', user.passwordHash === null ? 'This account has no password: leave currentPassword out' : 'The current password is not correct', {
        errors: [{ path: '/currentPassword', message: 'is not correct' }],
      })
    }
    await throttle.clear(key)
    return user
  }

  /**
   * Sets a new password (the first one, for an account made through a provider) and ends every other
   * session of the user; the caller's stays signed in. Returns how many ended.
   */
  async changePassword (caller: { userId: string, sessionId: string, signedInAt: Date }, input: { currentPassword?: string | undefined, newPassword: string }, source: EventSource): Promise<number> {
    const user = await this.confirmOwner(caller.userId, input.currentPassword, caller.signedInAt)
    const password = normalizePassword(input.newPassword)
    assertPasswordPolicy(password, { minLength: this.deps.config.passwordMinLength, email: user.email, username: user.username, field: '/newPassword' })
    const passwordHash = await hashPassword(password)
    const now = this.now()
    const ended = await this.deps.db.transaction(async tx => {
      await updateUser(tx, user.id, { passwordHash, updatedAt: now })
      const otherSessionsEnded = await this.deps.sessions.endAll(user.id, 'password_changed', { exceptId: caller.sessionId, ex: tx })
      await this.deps.events.record(tx, 'password_changed', user.id, source, { otherSessionsEnded, firstPassword: user.passwordHash === null })
      await this.deps.events.notify(tx, user.email, 'password_changed')
      return otherSessionsEnded
    })
    this.deps.events.queued()
    return ended
  }

  /** The user and their sessions (ON DELETE CASCADE), in one statement. */
  async deleteAccount (caller: { userId: string, signedInAt: Date }, currentPassword: string | undefined, source: EventSource): Promise<void> {
    const user = await this.confirmOwner(caller.userId, currentPassword, caller.signedInAt)
    await this.deps.db.transaction(async tx => {
      // the webhook is queued before the row goes: it shows the account as it was
      await this.deps.events.webhook(tx, 'user.deleted', user)
      await deleteUser(tx, caller.userId)
      await this.deps.events.record(tx, 'account_deleted', caller.userId, source)
    })
    this.deps.events.queued()
  }

  /**
   * Asks to change the email: a link to the new address (single use, EMAIL_CHANGE_TOKEN_TTL, voiding older
   * ones) and a notice to the current one naming the new. The same answer when the new address is taken,
   * then with no link (and nothing to that address): nobody learns whose address it is.
   */
  async requestEmailChange (caller: { userId: string, signedInAt: Date }, input: { newEmail: string, currentPassword?: string | undefined }, source: EventSource): Promise<void> {
    const { db, config, events, mailSecret } = this.deps
    const user = await this.confirmOwner(caller.userId, input.currentPassword, caller.signedInAt)
    const newEmail = input.newEmail.trim().toLowerCase()
    if (newEmail === user.email) {
      throw new ApiError('validation_failed', 'This is already the email address of the account', { errors: [{ path: '/newEmail', message: 'is the current address' }] })
    }
    const now = this.now()
    await db.transaction(async tx => {
      const taken = await findUserByEmail(tx, newEmail)
      const id = randomUUID()
      // made whether or not the address is free: it voids older links either way. Spent outright, not
      // only outranked by requested_at: two requests within one millisecond would otherwise tie.
      await voidEmailTokens(tx, user.id, ['email_change'], now)
      await insertEmailToken(tx, {
        id,
        userId: user.id,
        purpose: 'email_change',
        tokenHash: hashEmailToken(emailTokenFor(mailSecret, id)),
        newEmail,
        requestedAt: now,
        expiresAt: new Date(now.getTime() + config.mail.emailChangeTtl * 1000),
      })
      if (!taken) await enqueueMail(tx, { id: randomUUID(), kind: 'email_change', recipient: newEmail, tokenId: id, now })
      await events.notify(tx, user.email, 'email_change_requested', { newEmail })
      await events.record(tx, 'email_change_requested', user.id, source, { newEmail })
    })
    events.queued()
  }

  /**
   * Follows an email change link: the new address becomes the account's (verified), every session ends
   * but the confirming one (when the request carries that user's token), the links sent to the old
   * address die, and the old address gets a last notice. 409 email_taken if someone took it meanwhile.
   */
  async confirmEmailChange (token: string, caller: { userId: string, sessionId: string } | null, client: EventSource): Promise<{ userId: string, sessionsEnded: number }> {
    const { db, events } = this.deps
    if (!isWellFormedEmailToken(token)) throw changeInvalid()
    const now = this.now()
    let outcome
    try {
      outcome = await db.transaction(async tx => {
        const row = await lockUsableEmailToken(tx, hashEmailToken(token), 'email_change', now)
        if (!row?.token.newEmail) return null
        const { user } = row
        const newEmail = row.token.newEmail
        await markEmailTokenUsed(tx, row.token.id, now)
        const changed = await updateUser(tx, user.id, { email: newEmail, emailVerifiedAt: now, updatedAt: now })
        await voidEmailTokens(tx, user.id, ['reset', 'verify'], now)
        const exceptId = caller?.userId === user.id ? caller.sessionId : undefined
        const sessionsEnded = await this.deps.sessions.endAll(user.id, 'email_changed', { exceptId, ex: tx })
        await events.record(tx, 'email_changed', user.id, { ...client, sessionId: exceptId ?? null }, { previousEmail: user.email, newEmail, sessionsEnded })
        await events.notify(tx, user.email, 'email_changed', { newEmail })
        await events.webhook(tx, 'user.updated', changed!)
        return { userId: user.id, sessionsEnded }
      })
    } catch (err) {
      if (uniqueViolation(err) !== undefined) throw new ApiError('email_taken', 'Another account took this email address meanwhile', { cause: err })
      throw err
    }
    if (!outcome) throw changeInvalid()
    events.queued()
    return outcome
  }

  async listUsers (options: { limit: number, cursor?: string | undefined, email?: string | undefined }) {
    const page = await listUsers(this.deps.db, { limit: options.limit, cursor: options.cursor?.toLowerCase(), emailPrefix: options.email })
    const now = this.now().getTime()
    const users: AdminUserView[] = page.items.map(u => {
      const suspended = u.suspendedAt !== null && (u.suspendedUntil === null || u.suspendedUntil.getTime() > now)
      return {
        id: u.id,
        email: u.email,
        username: u.username,
        name: u.name,
        role: u.role,
        emailVerified: u.emailVerifiedAt !== null,
        createdAt: u.createdAt.toISOString(),
        suspended,
        suspendedUntil: suspended ? u.suspendedUntil?.toISOString() ?? null : null,
      }
    })
    return { users, nextCursor: page.nextCursor }
  }

  private async target (userId: string) {
    const user = isUuid(userId) ? await findUserById(this.deps.db, userId.toLowerCase()) : undefined
    if (!user) throw new ApiError('not_found', 'No user has this id')
    return user
  }

  /** Ends every session of a user; 404 when there is no such user. Returns how many ended. */
  async revokeAllSessions (userId: string, source: EventSource): Promise<number> {
    const user = await this.target(userId)
    const ended = await this.deps.db.transaction(async tx => {
      const sessionsEnded = await this.deps.sessions.endAll(user.id, 'revoked_by_admin', { ex: tx })
      await this.deps.events.record(tx, 'admin_sessions_revoked', user.id, source, { sessionsEnded })
      return sessionsEnded
    })
    this.deps.events.queued()
    return ended
  }

  /**
   * Suspends an account (until lifted, or until `until`): every session ends at once, and every sign-in
   * answers 403 account_suspended after its credentials check. Not the admin's own (409 cannot_suspend_self).
   */
  async suspend (userId: string, input: { until?: string | undefined, reason?: string | undefined }, source: EventSource & { actorId: string }): Promise<number> {
    const user = await this.target(userId)
    if (user.id === source.actorId) throw new ApiError('cannot_suspend_self', 'An admin cannot suspend their own account')
    const now = this.now()
    // RFC 3339 allows a leap second (:60), which Date cannot hold: it is read as the second before
    const until = input.until === undefined ? null : new Date(input.until.replace(/:60(?=(\.\d+)?(Z|[+-]\d{2}:\d{2})$)/i, ':59'))
    const refuse = (detail: string, message: string) => new ApiError('validation_failed', detail, { errors: [{ path: '/until', message }] })
    if (until && Number.isNaN(until.getTime())) throw refuse('until is not a time', 'must be an ISO time')
    // An offset can carry 9999-12-31 past the year 9999 in UTC, which ISO text (and so the database) cannot hold
    if (until && until.getUTCFullYear() > 9999) throw refuse('until is too far away', 'must be before the year 10000 (UTC)')
    if (until && until.getTime() <= now.getTime()) throw refuse('until must be in the future', 'must be in the future')
    const reason = input.reason?.trim() || null
    const ended = await this.deps.db.transaction(async tx => {
      const suspended = await updateUser(tx, user.id, { suspendedAt: now, suspendedUntil: until, suspendedReason: reason, updatedAt: now })
      const sessionsEnded = await this.deps.sessions.endAll(user.id, 'suspended', { ex: tx })
      await this.deps.events.record(tx, 'account_suspended', user.id, source, { until: until?.toISOString() ?? null, reason, sessionsEnded })
      await this.deps.events.notify(tx, user.email, 'account_suspended', { ...(until ? { until: until.toISOString() } : {}), ...(reason ? { reason } : {}) })
      await this.deps.events.webhook(tx, 'user.suspended', suspended!)
      return sessionsEnded
    })
    this.deps.events.queued()
    return ended
  }

  /** Lifts a suspension (nothing to do when there is none). */
  async unsuspend (userId: string, source: EventSource & { actorId: string }): Promise<void> {
    const user = await this.target(userId)
    const now = this.now()
    await this.deps.db.transaction(async tx => {
      const lifted = await updateUser(tx, user.id, { suspendedAt: null, suspendedUntil: null, suspendedReason: null, updatedAt: now })
      await this.deps.events.record(tx, 'account_unsuspended', user.id, source, { wasSuspended: user.suspendedAt !== null })
      await this.deps.events.webhook(tx, 'user.updated', lifted!)
    })
    this.deps.events.queued()
  }
}
