import { randomUUID } from 'node:crypto'
import type { Clock } from '../clock.js'
import type { Config } from '../config.js'
import type { Database, Executor } from '../db/client.js'
import { ApiError } from '../errors.js'
import { emailTokenFor, hashEmailToken, isWellFormedEmailToken } from '../mail/tokens.js'
import { insertEmailToken, lockUsableEmailToken, markEmailTokenUsed } from '../repositories/email-tokens.js'
import { enqueueMail } from '../repositories/outbox.js'
import { findUserById, updateUser } from '../repositories/users.js'
import type { SecurityEvents } from './security-events.js'
import type { ClientMeta } from './sessions.js'

export interface EmailVerificationDeps {
  db: Database
  config: Config
  clock: Clock
  mailSecret: Buffer
  /** Wakes the mail sender once a message is committed. */
  mailQueued: () => void
  events: SecurityEvents
}

const verifyInvalid = () => new ApiError('verification_token_invalid', 'This verification link is not valid, was already used or has expired; ask for a new one')

/** Proving the address: a link by mail, single use, only the newest one valid. */
export class EmailVerificationService {
  constructor (private readonly deps: EmailVerificationDeps) {}

  private now () { return new Date(this.deps.clock()) }

  /** Queues a verification mail inside the caller's transaction; older links of the user are void from now on. */
  async queue (tx: Executor, user: { id: string, email: string }, now: Date): Promise<void> {
    const id = randomUUID()
    await insertEmailToken(tx, {
      id,
      userId: user.id,
      purpose: 'verify',
      tokenHash: hashEmailToken(emailTokenFor(this.deps.mailSecret, id)),
      requestedAt: now,
      expiresAt: new Date(now.getTime() + this.deps.config.mail.verifyTtl * 1000),
    })
    await enqueueMail(tx, { id: randomUUID(), kind: 'verify_email', recipient: user.email, tokenId: id, now })
  }

  /** After the commit of a transaction that queued mail. */
  queued (): void {
    this.deps.mailQueued()
  }

  /** Marks the address verified and spends the token. Returns the user's id. */
  async verify (token: string, client: ClientMeta): Promise<string> {
    const { db } = this.deps
    if (!isWellFormedEmailToken(token)) throw verifyInvalid()
    const now = this.now()
    const userId = await db.transaction(async tx => {
      const row = await lockUsableEmailToken(tx, hashEmailToken(token), 'verify', now)
      if (!row) return null
      await markEmailTokenUsed(tx, row.token.id, now)
      if (!row.user.emailVerifiedAt) {
        const user = await updateUser(tx, row.user.id, { emailVerifiedAt: now, updatedAt: now })
        await this.deps.events.record(tx, 'email_verified', row.user.id, client)
        await this.deps.events.webhook(tx, 'user.updated', user!)
      }
      return row.user.id
    })
    if (!userId) throw verifyInvalid()
    this.deps.events.queued()
    return userId
  }

  /** A new verification mail, voiding the older ones; nothing when the address is already verified. Returns whether one was queued. */
  async resend (userId: string): Promise<boolean> {
    const { db } = this.deps
    const user = await findUserById(db, userId)
    if (!user || user.emailVerifiedAt) return false
    await db.transaction(tx => this.queue(tx, user, this.now()))
    this.queued()
    return true
  }
}
