import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Clock } from '../clock.js'
import type { Config } from '../config.js'
import type { Database } from '../db/client.js'
import { insertEmailToken, isEmailTokenUsable } from '../repositories/email-tokens.js'
import { claimDueMail, finishMail, retryMailAt, setMailToken, type OutboxRow } from '../repositories/outbox.js'
import { findUserByEmail } from '../repositories/users.js'
import { isNotice, linkFor, render, renderNotice, type LinkKind, type Message } from './templates.js'
import { emailTokenFor, hashEmailToken } from './tokens.js'
import { CONCURRENCY, type Transport } from './transport.js'
import type { WebhookTransport } from './webhooks.js'

/**
 * A claimed message is this one's to send for this long. Messages are claimed only as a slot frees to send
 * them at once, so the lease covers one attempt (the transport's timeouts end it well inside), never a wait
 * behind other messages: another instance cannot take a message this one is still going to send.
 */
const LEASE_MS = 60_000
const MAX_BACKOFF_MS = 30_000
/** A message is retried for a day before it is given up. */
export const GIVE_UP_AFTER_MS = 24 * 3600_000

/** 1 s, 2 s, 4 s … capped at 30 s, less up to a fifth at random so instances do not retry in step. */
export const backoffMs = (attempts: number) => Math.round(Math.min(MAX_BACKOFF_MS, 1000 * 2 ** Math.max(0, attempts - 1)) * (1 - Math.random() * 0.2))

export interface SenderDeps {
  db: Database
  config: Config
  clock: Clock
  mailSecret: Buffer
  transport: Transport
  /** undefined without WEBHOOK_URL: a webhook left in the outbox is then skipped */
  webhooks: WebhookTransport | undefined
  log: FastifyBaseLogger
}

/**
 * Delivers the outbox off the request path: polls, and is kicked when something is queued. Up to
 * CONCURRENCY messages are in flight at once (an SMTP relay spends tens of milliseconds on each, so one at
 * a time would cap a sender at ~20 a second); as each ends, the free slots claim what is due. Several
 * instances share the work (claims use FOR UPDATE SKIP LOCKED), so nothing is sent twice by them.
 */
export class OutboxSender {
  private timer: NodeJS.Timeout | undefined
  private running: Promise<void> | undefined
  /** Something may be due: set by a kick (and the poll), and by a claim that got all it asked for. */
  private due = false
  /** Wakes the running round when a message ends or a kick comes. */
  private wake: (() => void) | undefined
  private stopped = false

  constructor (private readonly deps: SenderDeps) {}

  start (pollMs: number) {
    this.timer = setInterval(() => this.kick(), pollMs)
    this.timer.unref()
    this.kick()
  }

  /** Claims what is due as soon as a slot is free: now, or as the next message in flight ends. */
  kick () {
    if (this.stopped) return
    this.due = true
    if (this.running) { this.wake?.(); return }
    this.running = this.round()
      .catch((err: unknown) => this.deps.log.warn({ err: { message: (err as Error).message } }, 'mail delivery round failed; will try again'))
      .finally(() => {
        this.running = undefined
        // kicked as the round was ending
        if (this.due) this.kick()
      })
  }

  /** Keeps up to CONCURRENCY messages in flight while something is due; ends when nothing is due or in flight. */
  private async round (): Promise<void> {
    const { db, clock, log } = this.deps
    const inFlight = new Set<Promise<void>>()
    try {
      for (;;) {
        const free = CONCURRENCY - inFlight.size
        if (this.due && free > 0 && !this.stopped) {
          this.due = false
          const rows = await claimDueMail(db, new Date(clock()), LEASE_MS, free)
          if (rows.length === free) this.due = true
          for (const row of rows) {
            const sending: Promise<void> = this.deliver(row)
              .catch((err: unknown) => log.warn({ mailId: row.id, err: { message: (err as Error).message } }, 'outbox row not handled; its lease will run out and it is tried again'))
              .finally(() => { inFlight.delete(sending); this.wake?.() })
            inFlight.add(sending)
          }
          continue
        }
        if (inFlight.size === 0) return
        await new Promise<void>(resolve => { this.wake = resolve })
        this.wake = undefined
      }
    } finally {
      await Promise.all(inFlight)
    }
  }

  /** Everything due is handled when this resolves (a round in progress included). */
  async flush (): Promise<void> {
    this.kick()
    while (this.running) await this.running
  }

  async stop () {
    this.stopped = true
    clearInterval(this.timer)
    this.wake?.()
    await this.running
    this.deps.transport.close()
  }

  /** A reset request names an address: its token is made now, if an account has that address. */
  private async resolveResetToken (row: OutboxRow): Promise<string | null> {
    const { db, config, mailSecret } = this.deps
    return db.transaction(async tx => {
      const user = await findUserByEmail(tx, row.recipient)
      if (!user) return null
      const id = randomUUID()
      await insertEmailToken(tx, {
        id,
        userId: user.id,
        purpose: 'reset',
        tokenHash: hashEmailToken(emailTokenFor(mailSecret, id)),
        // valid from the request, not from when the sender got to it
        requestedAt: row.createdAt,
        expiresAt: new Date(row.createdAt.getTime() + config.mail.resetTtl * 1000),
      })
      await setMailToken(tx, row.id, id)
      return id
    })
  }

  private async deliver (row: OutboxRow) {
    const { config, webhooks } = this.deps
    if (row.kind === 'webhook') {
      if (!webhooks) return this.skip(row, 'WEBHOOK_URL is no longer set')
      return this.attempt(row, () => webhooks.send(row.id, JSON.stringify(row.data)))
    }
    if (row.kind === 'notice') {
      const { notice, ...facts } = (row.data ?? {}) as Record<string, string>
      if (!isNotice(notice)) return this.skip(row, 'unknown notice')
      const message = renderNotice(notice, facts, { to: row.recipient, from: config.mail.from })
      return this.attempt(row, () => this.deps.transport.send(message, { id: row.id, link: '' }))
    }
    const kind = row.kind as LinkKind
    const tokenId = row.tokenId ?? (kind === 'password_reset' ? await this.resolveResetToken(row) : null)
    if (!tokenId) {
      await finishMail(this.deps.db, row.id, 'skipped', new Date(this.deps.clock()))
      this.deps.log.info({ mailId: row.id, kind }, 'mail skipped: no account has this address')
      return
    }
    if (!await isEmailTokenUsable(this.deps.db, tokenId, new Date(this.deps.clock()))) {
      return this.skip(row, 'the token was used, replaced or expired before it was sent')
    }
    const link = linkFor(config.mail.appUrl, kind, emailTokenFor(this.deps.mailSecret, tokenId))
    const message: Message = render(kind, {
      to: row.recipient,
      from: config.mail.from,
      subject: kind === 'password_reset' ? config.mail.subjects.reset : kind === 'verify_email' ? config.mail.subjects.verify : 'Confirm your new email address',
      link,
      ttlSeconds: kind === 'password_reset' ? config.mail.resetTtl : kind === 'verify_email' ? config.mail.verifyTtl : config.mail.emailChangeTtl,
    })
    return this.attempt(row, () => this.deps.transport.send(message, { id: row.id, link }))
  }

  private async skip (row: OutboxRow, why: string) {
    await finishMail(this.deps.db, row.id, 'skipped', new Date(this.deps.clock()), why)
    this.deps.log.info({ mailId: row.id, kind: row.kind }, `outbox row skipped: ${why}`)
  }

  /** One try: sent, or retried with back-off (given up after a day). */
  private async attempt (row: OutboxRow, send: () => Promise<void>) {
    const { db, clock, log } = this.deps
    try {
      await send()
    } catch (err) {
      const now = clock()
      const error = (err as Error).message.slice(0, 500)
      if (now - row.createdAt.getTime() >= GIVE_UP_AFTER_MS) {
        await finishMail(db, row.id, 'failed', new Date(now), error)
        log.error({ mailId: row.id, kind: row.kind, attempts: row.attempts, error }, 'outbox row given up after a day of attempts')
      } else {
        const wait = backoffMs(row.attempts)
        await retryMailAt(db, row.id, new Date(now + wait), error)
        log.warn({ mailId: row.id, kind: row.kind, attempts: row.attempts, retryInMs: wait, error }, 'outbox row not delivered; will retry')
      }
      return
    }
    await finishMail(db, row.id, 'sent', new Date(clock()))
    log.info({ mailId: row.id, kind: row.kind, attempts: row.attempts }, row.kind === 'webhook' ? 'webhook delivered' : 'mail sent')
  }
}
