import { randomUUID } from 'node:crypto'
import type { Config } from '../config.js'
import type { Database, Executor } from '../db/client.js'
import { ApiError } from '../errors.js'
import { emailTokenFor, hashEmailToken, isWellFormedEmailToken } from '../mail/tokens.js'
import { insertEmailToken, lockUsableEmailToken, markEmailTokenUsed } from '../repositories/email-tokens.js'
import { enqueueMail } from '../repositories/outbox.js'
import { revokeUserSessions } from '../repositories/sessions.js'
import { findUserById, updateUser } from '../repositories/users.js'
import type { Clock } from './auth-service.js'
import type { LoginThrottle } from './login-throttle.js'
import { assertPasswordPolicy, hashPassword, normalizePassword } from './passwords.js'
import { throttled } from './throttle.js'

export interface EmailServiceDeps {
  db: Database
  config: Config
  clock: Clock
  mailSecret: Buffer
  /** Reset requests per address (RATE_LIMIT_FORGOT an hour). */
  forgotThrottle: LoginThrottle
  /** The per-account sign-in count, cleared by a successful reset. */
  loginThrottle: LoginThrottle
  /** Wakes the sender once a message is committed. */
  mailQueued: () => void
}

/** Queues a verification mail for a user inside the caller's transaction; the token's predecessors are void from now on. */
export async function queueVerification (tx: Executor, deps: { config: Config, mailSecret: Buffer }, user: { id: string, email: string }, now: Date) {
  const id = randomUUID()
  await insertEmailToken(tx, {
    id,
    userId: user.id,
    purpose: 'verify',
    tokenHash: hashEmailToken(emailTokenFor(deps.mailSecret, id)),
    requestedAt: now,
    expiresAt: new Date(now.getTime() + deps.config.mail.verifyTtl * 1000),
  })
  await enqueueMail(tx, { id: randomUUID(), kind: 'verify_email', recipient: user.email, tokenId: id, now })
}

const resetInvalid = () => new ApiError('reset_token_invalid', 'This reset link is not valid, was already used or has expired; ask for a new one')
const verifyInvalid = () => new ApiError('verification_token_invalid', 'This verification link is not valid, was already used or has expired; ask for a new one')

/** Password reset and email verification. Nothing here tells a caller whether an address has an account. */
export class EmailService {
  constructor (private readonly deps: EmailServiceDeps) {}

  private now () { return new Date(this.deps.clock()) }

  /**
   * The same work whatever the address: count it, and queue one outbox row naming the address. The
   * sender resolves the account later, off the request path, so time and answer are the same.
   */
  async forgotPassword (email: string): Promise<void> {
    const { db, config, forgotThrottle, mailQueued } = this.deps
    const now = this.now()
    const gate = await forgotThrottle.reserve(`forgot:${email}`, now)
    if (!gate.allowed) throw throttled(gate.retryAfterSeconds, config.rateLimit.forgot, 'Too many reset requests for this address; try again later')
    await enqueueMail(db, { id: randomUUID(), kind: 'password_reset', recipient: email, now })
    mailQueued()
  }

  /** Sets the new password, spends the token and ends every session. Returns the user's id. */
  async resetPassword (token: string, newPassword: string): Promise<string> {
    const { db, config } = this.deps
    if (!isWellFormedEmailToken(token)) throw resetInvalid()
    const tokenHash = hashEmailToken(token)
    const now = this.now()
    const found = await lockUsableEmailToken(db, tokenHash, 'reset', now)
    if (!found) throw resetInvalid()
    // a refused password leaves the token usable
    const password = normalizePassword(newPassword)
    assertPasswordPolicy(password, { minLength: config.passwordMinLength, email: found.user.email, username: found.user.username, field: '/newPassword' })
    const passwordHash = await hashPassword(password)
    const userId = await db.transaction(async tx => {
      // again under the lock: a parallel reset with the same token finds it used
      const row = await lockUsableEmailToken(tx, tokenHash, 'reset', now)
      if (!row) return null
      await markEmailTokenUsed(tx, row.token.id, now)
      // following the link proved the mailbox is theirs
      await updateUser(tx, row.user.id, { passwordHash, updatedAt: now, emailVerifiedAt: row.user.emailVerifiedAt ?? now })
      await revokeUserSessions(tx, row.user.id, 'password_reset', now)
      return row.user.id
    })
    if (!userId) throw resetInvalid()
    // the owner proved control of the address: a lock from someone guessing the old password ends
    await this.deps.loginThrottle.clear(`user:${userId}`)
    return userId
  }

  /** Marks the address verified and spends the token. Returns the user's id. */
  async verifyEmail (token: string): Promise<string> {
    const { db } = this.deps
    if (!isWellFormedEmailToken(token)) throw verifyInvalid()
    const now = this.now()
    const userId = await db.transaction(async tx => {
      const row = await lockUsableEmailToken(tx, hashEmailToken(token), 'verify', now)
      if (!row) return null
      await markEmailTokenUsed(tx, row.token.id, now)
      if (!row.user.emailVerifiedAt) await updateUser(tx, row.user.id, { emailVerifiedAt: now, updatedAt: now })
      return row.user.id
    })
    if (!userId) throw verifyInvalid()
    return userId
  }

  /** A new verification mail, voiding the older ones; nothing when the address is already verified. Returns whether one was queued. */
  async resendVerification (userId: string): Promise<boolean> {
    const { db } = this.deps
    const user = await findUserById(db, userId)
    if (!user || user.emailVerifiedAt) return false
    await db.transaction(tx => queueVerification(tx, this.deps, user, this.now()))
    this.deps.mailQueued()
    return true
  }
}
