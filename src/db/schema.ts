import { sql } from 'drizzle-orm'
import { bigint, boolean, check, index, integer, jsonb, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core'

const at = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' })

export const ROLES = ['user', 'admin'] as const
export type Role = typeof ROLES[number]

export const users = pgTable('users', {
  id: uuid('id').primaryKey(),
  // stored trimmed and lower-cased, so a plain unique index is case-insensitive
  email: text('email').notNull(),
  username: text('username'),
  name: text('name'),
  // null for an account made through an identity provider until a password is set (by a reset)
  passwordHash: text('password_hash'),
  role: text('role', { enum: ROLES }).notNull().default('user'),
  emailVerifiedAt: at('email_verified_at'),
  // the WebAuthn user handle of the user's passkeys: random, neither the id nor the email (base64url)
  passkeyHandle: text('passkey_handle'),
  // suspended by an admin: no sign-in until lifted, or until suspended_until when that is set
  suspendedAt: at('suspended_at'),
  suspendedUntil: at('suspended_until'),
  suspendedReason: text('suspended_reason'),
  createdAt: at('created_at').notNull(),
  updatedAt: at('updated_at').notNull(),
}, t => [
  uniqueIndex('users_email_key').on(t.email),
  uniqueIndex('users_username_lower_key').on(sql`lower(${t.username})`),
  uniqueIndex('users_passkey_handle_key').on(t.passkeyHandle),
  check('users_role_check', sql`${t.role} in ('user', 'admin')`),
])

export const AALS = ['aal1', 'aal2', 'aal3'] as const
export type Aal = typeof AALS[number]

// One row per session, updated in place: the refresh state is a counter, so nothing grows with
// rotations. A refresh token is the session id and the counter under a server MAC (auth/refresh-tokens.ts).
export const sessions = pgTable('sessions', {
  id: uuid('id').primaryKey(),
  userId: uuid('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  rememberMe: boolean('remember_me').notNull(),
  createdAt: at('created_at').notNull(),
  // the sign-in or the latest rotation; the reuse grace window counts from it
  lastUsedAt: at('last_used_at').notNull(),
  absoluteExpiresAt: at('absolute_expires_at').notNull(),
  // the counter of the one refresh token that may rotate next
  refreshCounter: integer('refresh_counter').notNull().default(0),
  refreshExpiresAt: at('refresh_expires_at').notNull(),
  // what the sign-in proved (NIST SP 800-63B assurance level; RFC 8176 method references)
  aal: text('aal', { enum: AALS }).notNull(),
  amr: text('amr').array().notNull(),
  revokedAt: at('revoked_at'),
  revokedReason: text('revoked_reason'),
  userAgent: text('user_agent'),
  ip: text('ip'),
}, t => [
  index('sessions_user_id_idx').on(t.userId),
  check('sessions_aal_check', sql`${t.aal} in ('aal1', 'aal2', 'aal3')`),
])

// A user's authenticator app (RFC 6238) and recovery codes, one row per user. Pending from enrolment
// until a first code confirms it. The secret is AES-256-GCM under MFA_ENCRYPTION_KEY; recovery codes are
// kept only as keyed hashes, each removed from the array when used.
export const totpFactors = pgTable('totp_factors', {
  userId: uuid('user_id').primaryKey().references(() => users.id, { onDelete: 'cascade' }),
  secret: text('secret').notNull(),
  createdAt: at('created_at').notNull(),
  confirmedAt: at('confirmed_at'),
  // the latest 30-second step accepted: a code of that step or an earlier one is never accepted again
  lastStep: bigint('last_step', { mode: 'number' }),
  recoveryCodes: text('recovery_codes').array().notNull().default(sql`'{}'::text[]`),
})

// The pause between a first factor and the second: a single-use token (stored as its SHA-256) that
// /login/mfa exchanges, with a code, for a session.
export const mfaChallenges = pgTable('mfa_challenges', {
  id: uuid('id').primaryKey(),
  userId: uuid('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  tokenHash: text('token_hash').notNull(),
  // what the first step proved, and the sign-in's rememberMe
  amr: text('amr').array().notNull(),
  rememberMe: boolean('remember_me').notNull(),
  createdAt: at('created_at').notNull(),
  expiresAt: at('expires_at').notNull(),
  failures: integer('failures').notNull().default(0),
  usedAt: at('used_at'),
}, t => [
  uniqueIndex('mfa_challenges_token_hash_key').on(t.tokenHash),
  index('mfa_challenges_user_id_idx').on(t.userId),
])

// A user's passkeys (WebAuthn discoverable credentials). The public key is COSE, as the authenticator sent it.
export const passkeys = pgTable('passkeys', {
  id: uuid('id').primaryKey(),
  userId: uuid('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  credentialId: text('credential_id').notNull(),
  publicKey: text('public_key').notNull(),
  // the authenticator's signature counter; one that goes backwards means a cloned authenticator
  counter: bigint('counter', { mode: 'number' }).notNull(),
  transports: text('transports').array().notNull(),
  backedUp: boolean('backed_up').notNull(),
  deviceType: text('device_type', { enum: ['singleDevice', 'multiDevice'] }).notNull(),
  name: text('name').notNull(),
  createdAt: at('created_at').notNull(),
  lastUsedAt: at('last_used_at'),
}, t => [
  uniqueIndex('passkeys_credential_id_key').on(t.credentialId),
  index('passkeys_user_id_idx').on(t.userId),
])

export const WEBAUTHN_PURPOSES = ['register', 'login'] as const
export type WebauthnPurpose = typeof WEBAUTHN_PURPOSES[number]

// Challenges handed to a browser for one ceremony: single use (deleted when used), five minutes, shared
// by every instance. A registration challenge names its user; a sign-in challenge names nobody.
export const webauthnChallenges = pgTable('webauthn_challenges', {
  challenge: text('challenge').primaryKey(),
  purpose: text('purpose', { enum: WEBAUTHN_PURPOSES }).notNull(),
  userId: uuid('user_id').references(() => users.id, { onDelete: 'cascade' }),
  expiresAt: at('expires_at').notNull(),
}, t => [
  check('webauthn_challenges_purpose_check', sql`${t.purpose} in ('register', 'login')`),
])

// A user's accounts at identity providers (OpenID Connect): the provider's id and its `sub` name one
// identity for good; the email is the one the provider gave when it was linked.
export const identities = pgTable('identities', {
  id: uuid('id').primaryKey(),
  userId: uuid('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  provider: text('provider').notNull(),
  subject: text('subject').notNull(),
  email: text('email'),
  // whether the address was vouched for when linked: by the provider (email_verified) or by the signed-in
  // user linking it; an identity that was not is unlinked when a password reset proves the mailbox
  emailVerified: boolean('email_verified').notNull(),
  createdAt: at('created_at').notNull(),
  lastUsedAt: at('last_used_at'),
}, t => [
  uniqueIndex('identities_provider_subject_key').on(t.provider, t.subject),
  index('identities_user_id_idx').on(t.userId),
])

// A sign-in (or a link) in flight at a provider: made by /oauth/{id}/authorize (or POST /me/identities/{id}),
// spent by the callback. Found by the SHA-256 of our `state`; holds what the callback needs (our PKCE
// verifier and nonce towards the provider, the client's redirect URI, state and code challenge).
export const oauthFlows = pgTable('oauth_flows', {
  stateHash: text('state_hash').primaryKey(),
  provider: text('provider').notNull(),
  redirectUri: text('redirect_uri').notNull(),
  clientState: text('client_state'),
  codeChallenge: text('code_challenge').notNull(),
  codeVerifier: text('code_verifier').notNull(),
  nonce: text('nonce').notNull(),
  // set when a signed-in user links an identity: the callback links instead of signing in
  linkUserId: uuid('link_user_id').references(() => users.id, { onDelete: 'cascade' }),
  createdAt: at('created_at').notNull(),
  expiresAt: at('expires_at').notNull(),
})

// Our one-time codes, handed to the client's redirect URI and exchanged once at POST /oauth/token with
// the verifier of the code challenge the client sent to /authorize. Kept as their SHA-256.
export const oauthCodes = pgTable('oauth_codes', {
  codeHash: text('code_hash').primaryKey(),
  userId: uuid('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  provider: text('provider').notNull(),
  codeChallenge: text('code_challenge').notNull(),
  createdAt: at('created_at').notNull(),
  expiresAt: at('expires_at').notNull(),
})

// Failed-login counts per account (or per unknown identifier), shared by every instance.
export const loginThrottle = pgTable('login_throttle', {
  key: text('key').primaryKey(),
  failures: integer('failures').notNull(),
  windowStartedAt: at('window_started_at').notNull(),
})

export const EMAIL_TOKEN_PURPOSES = ['reset', 'verify', 'email_change'] as const
export type EmailTokenPurpose = typeof EMAIL_TOKEN_PURPOSES[number]

// One-time tokens sent by email. The token is derived from the row's id with a server key (so the
// outbox can render it again for a retry) and stored here only as a hash. Only the newest token of a
// user and purpose is valid: a newer request voids older ones.
export const emailTokens = pgTable('email_tokens', {
  id: uuid('id').primaryKey(),
  userId: uuid('user_id').notNull().references(() => users.id, { onDelete: 'cascade' }),
  purpose: text('purpose', { enum: EMAIL_TOKEN_PURPOSES }).notNull(),
  tokenHash: text('token_hash').notNull(),
  // an email change: the address the link was sent to, which becomes the account's when it is followed
  newEmail: text('new_email'),
  requestedAt: at('requested_at').notNull(),
  expiresAt: at('expires_at').notNull(),
  usedAt: at('used_at'),
}, t => [
  uniqueIndex('email_tokens_token_hash_key').on(t.tokenHash),
  index('email_tokens_user_purpose_idx').on(t.userId, t.purpose, t.requestedAt),
  check('email_tokens_purpose_check', sql`${t.purpose} in ('reset', 'verify', 'email_change')`),
])

export const OUTBOX_KINDS = ['password_reset', 'verify_email', 'email_change', 'notice', 'webhook'] as const
export type OutboxKind = typeof OUTBOX_KINDS[number]

// Mail and webhooks to send, written in the transaction of the change that causes it and delivered by the sender
// off the request path. A reset request names only the address: the sender resolves the account, so
// the request costs the same whether or not one exists. No message body or token is stored.
export const outbox = pgTable('outbox', {
  id: uuid('id').primaryKey(),
  kind: text('kind', { enum: OUTBOX_KINDS }).notNull(),
  recipient: text('recipient').notNull(),
  tokenId: uuid('token_id').references(() => emailTokens.id, { onDelete: 'cascade' }),
  // what a notice says (its event and the few facts it names) or a webhook's body; never a token or secret
  data: jsonb('data').$type<Record<string, unknown>>(),
  createdAt: at('created_at').notNull(),
  nextAttemptAt: at('next_attempt_at').notNull(),
  attempts: integer('attempts').notNull().default(0),
  lastError: text('last_error'),
  // pending, sent, skipped (no account for a reset request), failed (gave up after a day)
  status: text('status', { enum: ['pending', 'sent', 'skipped', 'failed'] }).notNull().default('pending'),
  finishedAt: at('finished_at'),
}, t => [
  index('outbox_pending_idx').on(t.nextAttemptAt).where(sql`status = 'pending'`),
  check('outbox_kind_check', sql`${t.kind} in ('password_reset', 'verify_email', 'email_change', 'notice', 'webhook')`),
])

// The security history: one row per security event, written in the transaction of the change it
// records (a failed sign-in in its own). No foreign key: the history outlives a deleted account until
// AUDIT_RETENTION_DAYS. Ids are UUIDv7, so they order the events in time (the pages' cursor).
export const auditEvents = pgTable('audit_events', {
  id: uuid('id').primaryKey(),
  at: at('at').notNull(),
  type: text('type').notNull(),
  // whose account it concerns, and who did it when that is someone else (an admin)
  userId: uuid('user_id'),
  actorId: uuid('actor_id'),
  sessionId: uuid('session_id'),
  ip: text('ip'),
  userAgent: text('user_agent'),
  detail: jsonb('detail').$type<Record<string, unknown>>().notNull().default({}),
}, t => [
  index('audit_events_user_id_idx').on(t.userId, t.id),
  index('audit_events_type_idx').on(t.type, t.id),
  index('audit_events_at_idx').on(t.at),
])

export type User = typeof users.$inferSelect
export type Session = typeof sessions.$inferSelect
export type Identity = typeof identities.$inferSelect
