import type { Clock } from '../clock.js'
import type { Config } from '../config.js'
import type { Database } from '../db/client.js'
import { ApiError } from '../errors.js'
import { isUuid } from '../ids.js'
import { deleteUser, findUserById, listUsers, updateUser } from '../repositories/users.js'
import type { AdminUserView } from '../schemas/admin.js'
import { toProfile, type Profile } from '../schemas/common.js'
import { accountKey, type AttemptThrottle } from './attempt-throttle.js'
import { assertPasswordPolicy, codePoints, hashPassword, MAX_PASSWORD_LENGTH, normalizePassword, verifyPassword } from './passwords.js'
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
}

/** A signed-in user managing their own account, and an admin managing others. */
export class AccountService {
  constructor (private readonly deps: AccountServiceDeps) {}

  private now () { return new Date(this.deps.clock()) }

  async updateProfile (userId: string, changes: { name?: string | null | undefined, username?: string | null | undefined }): Promise<Profile> {
    const set: { name?: string | null, username?: string | null, updatedAt: Date } = { updatedAt: this.now() }
    if (changes.name !== undefined) set.name = changes.name || null
    if (changes.username !== undefined) set.username = changes.username
    let user
    try {
      user = await updateUser(this.deps.db, userId, set)
    } catch (err) {
      throw conflictFrom(err) ?? err
    }
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
  async changePassword (caller: { userId: string, sessionId: string, signedInAt: Date }, input: { currentPassword?: string | undefined, newPassword: string }): Promise<number> {
    const user = await this.confirmOwner(caller.userId, input.currentPassword, caller.signedInAt)
    const password = normalizePassword(input.newPassword)
    assertPasswordPolicy(password, { minLength: this.deps.config.passwordMinLength, email: user.email, username: user.username, field: '/newPassword' })
    const passwordHash = await hashPassword(password)
    const now = this.now()
    return this.deps.db.transaction(async tx => {
      await updateUser(tx, user.id, { passwordHash, updatedAt: now })
      return this.deps.sessions.endAll(user.id, 'password_changed', { exceptId: caller.sessionId, ex: tx })
    })
  }

  /** The user and their sessions (ON DELETE CASCADE), in one statement. */
  async deleteAccount (caller: { userId: string, signedInAt: Date }, currentPassword: string | undefined): Promise<void> {
    await this.confirmOwner(caller.userId, currentPassword, caller.signedInAt)
    await deleteUser(this.deps.db, caller.userId)
  }

  async listUsers (options: { limit: number, cursor?: string | undefined, email?: string | undefined }) {
    const page = await listUsers(this.deps.db, { limit: options.limit, cursor: options.cursor?.toLowerCase(), emailPrefix: options.email })
    const users: AdminUserView[] = page.items.map(u => ({
      id: u.id, email: u.email, username: u.username, name: u.name, role: u.role, emailVerified: u.emailVerifiedAt !== null, createdAt: u.createdAt.toISOString(),
    }))
    return { users, nextCursor: page.nextCursor }
  }

  /** Ends every session of a user; 404 when there is no such user. Returns how many ended. */
  async revokeAllSessions (userId: string): Promise<number> {
    if (!isUuid(userId)) throw new ApiError('not_found', 'No user has this id')
    const id = userId.toLowerCase()
    const user = await findUserById(this.deps.db, id)
    if (!user) throw new ApiError('not_found', 'No user has this id')
    return this.deps.sessions.endAll(id, 'revoked_by_admin')
  }
}
