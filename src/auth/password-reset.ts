import { randomUUID } from 'node:crypto'
import type { Clock } from '../clock.js'
import type { Config } from '../config.js'
import type { Database } from '../db/client.js'
import { ApiError } from '../errors.js'
import { hashEmailToken, isWellFormedEmailToken } from '../mail/tokens.js'
import { lockUsableEmailToken, markEmailTokenUsed } from '../repositories/email-tokens.js'
import { enqueueMail } from '../repositories/outbox.js'
import { deleteUnvouchedIdentities } from '../repositories/identities.js'
import { updateUser } from '../repositories/users.js'
import { accountKey, type AttemptThrottle } from './attempt-throttle.js'
import { assertPasswordPolicy, hashPassword, normalizePassword } from './passwords.js'
import type { SecurityEvents } from './security-events.js'
import type { ClientMeta, SessionService } from './sessions.js'
import { throttled } from './throttle.js'

export interface PasswordResetDeps {
  db: Database
  config: Config
  clock: Clock
  sessions: SessionService
  /** Reset requests per address (RATE_LIMIT_FORGOT an hour). */
  requestThrottle: AttemptThrottle
  /** The per-account sign-in count, cleared by a successful reset. */
  signInThrottle: AttemptThrottle
  /** Wakes the mail sender once a message is committed. */
  mailQueued: () => void
  events: SecurityEvents
}

const resetInvalid = () => new ApiError('reset_token_invalid', 'This reset link is not valid, was already used or has expired; ask for a new one')

/** Forgotten passwords: a link by mail, then a new password. Nothing here tells whether an address has an account. */
export class PasswordResetService {
  constructor (private readonly deps: PasswordResetDeps) {}

  /**
   * The same work whatever the address: count it, and queue one outbox row naming the address. The
   * sender resolves the account later, off the request path, so time and answer are the same.
   */
  async request (email: string): Promise<void> {
    const { db, config, requestThrottle, mailQueued } = this.deps
    const now = new Date(this.deps.clock())
    const gate = await requestThrottle.reserve(`forgot:${email}`, now)
    if (!gate.allowed) throw throttled(gate.retryAfterSeconds, config.rateLimit.forgot, 'Too many reset requests for this address; try again later')
    await enqueueMail(db, { id: randomUUID(), kind: 'password_reset', recipient: email, now })
    mailQueued()
  }

  /** Sets the new password, spends the token and ends every session. Returns the user's id. */
  async reset (token: string, newPassword: string, client: ClientMeta): Promise<string> {
    const { db, config, sessions, events } = this.deps
    if (!isWellFormedEmailToken(token)) throw resetInvalid()
    const tokenHash = hashEmailToken(token)
    const now = new Date(this.deps.clock())
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
      const sessionsEnded = await sessions.endAll(row.user.id, 'password_reset', { ex: tx })
      // Whoever made this account through a provider that did not vouch for the address (before its
      // owner came to reset the password) must not keep a way in: such identities are unlinked.
      const unlinked = await deleteUnvouchedIdentities(tx, row.user.id)
      await events.record(tx, 'password_reset', row.user.id, client, { sessionsEnded, ...(unlinked.length ? { identitiesUnlinked: unlinked } : {}) })
      // once the new password is set, not at the request
      await events.notify(tx, row.user.email, 'password_reset')
      return row.user.id
    })
    if (!userId) throw resetInvalid()
    events.queued()
    // the owner proved control of the address: a lock from someone guessing the old password ends
    await this.deps.signInThrottle.clear(accountKey(userId))
    return userId
  }
}
