import type { Clock } from '../clock.js'
import type { Config, WebhookEventType } from '../config.js'
import type { Executor } from '../db/client.js'
import { uuidv7 } from '../ids.js'
import { insertAuditEvent } from '../repositories/audit-events.js'
import { enqueueMail, enqueueWebhook } from '../repositories/outbox.js'
import type { UserRow } from '../schemas/common.js'
import type { NoticeType } from '../mail/templates.js'

/** The client of a request, as sessions and the security history keep it. */
export interface ClientMeta { ip: string | null, userAgent: string | null }

/** The security history's event types (GET /me/security-events); sign-ins carry their method in `detail`. */
export type SecurityEventType =
  | 'register' | 'login_success' | 'login_failure' | 'logout' | 'refresh_reuse' | 'rate_limited' | 'session_revoked'
  | 'password_changed' | 'password_reset' | 'email_change_requested' | 'email_changed' | 'email_verified' | 'profile_updated'
  | 'mfa_enabled' | 'mfa_disabled' | 'recovery_code_used' | 'recovery_codes_regenerated'
  | 'passkey_added' | 'passkey_deleted' | 'identity_linked' | 'identity_unlinked'
  | 'account_suspended' | 'account_unsuspended' | 'account_deleted' | 'admin_sessions_revoked' | 'admin_mfa_reset'

/** Where an event came from: the request's client, its session, and the admin acting on someone else's account. */
export interface EventSource extends ClientMeta { sessionId?: string | null | undefined, actorId?: string | null | undefined }

export const NO_SOURCE: EventSource = { ip: null, userAgent: null }

/** The user as webhooks show it. */
export const webhookUser = (u: UserRow) => ({
  id: u.id, email: u.email, username: u.username, name: u.name, role: u.role, emailVerified: u.emailVerifiedAt !== null, createdAt: u.createdAt.toISOString(),
})

export interface SecurityEventsDeps {
  config: Config
  clock: Clock
  /** wakes the outbox sender once something is committed */
  queued: () => void
}

/**
 * What a change leaves behind, each written in the transaction of the change: a row of the security
 * history, a notice to the account's address, a webhook event for the app behind the API.
 */
export class SecurityEvents {
  constructor (private readonly deps: SecurityEventsDeps) {}

  async record (ex: Executor, type: SecurityEventType, userId: string | null, source: EventSource, detail: Record<string, unknown> = {}): Promise<void> {
    const at = new Date(this.deps.clock())
    await insertAuditEvent(ex, {
      id: uuidv7(at.getTime()),
      at,
      type,
      userId,
      actorId: source.actorId ?? null,
      sessionId: source.sessionId ?? null,
      ip: source.ip,
      userAgent: source.userAgent,
      detail,
    })
  }

  /** A notice to `to`; `facts` are what its text names (say, the new address of an email change). */
  async notify (ex: Executor, to: string, notice: NoticeType, facts: Record<string, string> = {}): Promise<void> {
    const now = new Date(this.deps.clock())
    await enqueueMail(ex, { id: uuidv7(now.getTime()), kind: 'notice', recipient: to, data: { notice, ...facts }, now })
  }

  /** Queues a webhook event when WEBHOOK_URL is set and WEBHOOK_EVENTS includes it. */
  async webhook (ex: Executor, type: WebhookEventType, user: UserRow, session?: { id: string }): Promise<void> {
    const { url, events } = this.deps.config.webhooks
    if (!url || !events.includes(type)) return
    const now = new Date(this.deps.clock())
    await enqueueWebhook(ex, {
      id: uuidv7(now.getTime()),
      body: { type, timestamp: now.toISOString(), data: { user: webhookUser(user), ...(session ? { session: { id: session.id } } : {}) } },
      now,
    })
  }

  /** Whether a webhook of this type would be queued (to skip work for ones that would not). */
  wants (type: WebhookEventType): boolean {
    return !!this.deps.config.webhooks.url && this.deps.config.webhooks.events.includes(type)
  }

  /** After the commit of a transaction that queued a notice or a webhook. */
  queued (): void {
    this.deps.queued()
  }
}
