import { randomBytes, timingSafeEqual } from 'node:crypto'
import type { Clock } from '../clock.js'
import type { Config, OidcProviderSettings } from '../config.js'
import { uniqueViolation, type Database, type Executor } from '../db/client.js'
import type { User } from '../db/schema.js'
import { ApiError } from '../errors.js'
import { isUuid, sha256, uuidv7 } from '../ids.js'
import {
  deleteIdentity, findIdentity, insertIdentity, insertOauthCode, insertOauthFlow, isLastSignInMethod, listIdentities, lockSignInMethods, takeOauthCode, takeOauthFlow, touchIdentity,
  type OauthFlow,
} from '../repositories/identities.js'
import { findUserByEmail, findUserById, insertUser } from '../repositories/users.js'
import type { EmailVerificationService } from './email-verification.js'
import { openidClient, providerUnavailable, type IdentityProviders } from './identity-providers.js'
import type { EventSource, SecurityEvents } from './security-events.js'

/** A flow (our state) lives ten minutes; our one-time code sixty seconds. */
export const OAUTH_FLOW_TTL_MS = 10 * 60_000
export const OAUTH_CODE_TTL_MS = 60_000

/** base64url(SHA-256(verifier)): the S256 code challenge of RFC 7636. */
export const s256 = (verifier: string) => sha256(verifier)
const random = (bytes: number) => randomBytes(bytes).toString('base64url')

const EMAIL = /^[^\s@\0]+@[^\s@\0]+$/

export interface IdentityView { id: string, provider: string, email: string | null, createdAt: string }

/** What the callback did, for the audit line; `redirect` is where the browser goes next. */
export type CallbackOutcome =
  | { redirect: URL, event: 'identity_sign_in' | 'identity_sign_up' | 'identity_linked', userId: string, provider: string, linkedBy?: 'email' | 'signed_in_user' }
  | { redirect: URL, refused: ApiError, provider: string, userId?: string | undefined }

/** What the provider said of the user, from its validated ID token. */
interface ProviderClaims { subject: string, email: string | undefined, emailVerified: boolean, name: string | undefined }

export interface FederationServiceDeps {
  db: Database
  config: Config
  clock: Clock
  providers: IdentityProviders
  verification: EmailVerificationService
  events: SecurityEvents
}

export const lastSignInMethod = () => new ApiError('last_sign_in_method', 'This is the only way left to sign in to this account: set a password (or add a passkey or another provider) first')
const stateInvalid = () => new ApiError('oauth_state_invalid', 'This sign-in is not known, was already finished, has expired or belongs to another provider: start again')
const codeInvalid = () => new ApiError('oauth_code_invalid', 'The code is not valid, was already used or has expired, or the codeVerifier does not match its codeChallenge')

/**
 * Signing in through an OpenID Connect provider (openid-client does discovery, PKCE, the code exchange
 * and the ID token checks). Our own leg to the client app is a second authorization-code flow with
 * PKCE: the callback hands the client's redirect URI a one-time code that only the holder of the
 * client's code verifier can exchange, at POST /oauth/token, for a session.
 */
export class FederationService {
  constructor (private readonly deps: FederationServiceDeps) {}

  private now () { return new Date(this.deps.clock()) }

  /** The provider's authorization URL for a new flow (a sign-in, or a link when `linkUserId` is set). */
  async authorize (providerId: string, input: { redirectUri: string, codeChallenge: string, clientState?: string | undefined, linkUserId?: string | undefined }): Promise<URL> {
    const { db, config, providers } = this.deps
    const provider = providers.settings(providerId)
    if (!config.oidc.redirectUris.includes(input.redirectUri)) {
      throw new ApiError('redirect_uri_invalid', 'This redirect URI is not one of OAUTH_REDIRECT_URIS (they are compared exactly)', { errors: [{ path: '/redirect_uri', message: 'is not an allowed redirect URI' }] })
    }
    const configuration = await providers.configuration(provider)
    const client = await openidClient()
    const state = random(32)
    const nonce = random(32)
    const codeVerifier = client.randomPKCECodeVerifier()
    const now = this.now()
    await insertOauthFlow(db, {
      stateHash: sha256(state),
      provider: provider.id,
      redirectUri: input.redirectUri,
      clientState: input.clientState ?? null,
      codeChallenge: input.codeChallenge,
      codeVerifier,
      nonce,
      linkUserId: input.linkUserId ?? null,
      createdAt: now,
      expiresAt: new Date(now.getTime() + OAUTH_FLOW_TTL_MS),
    })
    return client.buildAuthorizationUrl(configuration, {
      redirect_uri: providers.callbackUrl(provider),
      scope: provider.scopes,
      state,
      nonce,
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
    })
  }

  /**
   * The provider's answer. A state that is unknown, spent, expired or another provider's is a 400 (no
   * redirect: nothing says where to); from then on every outcome is a redirect to the client's URI.
   */
  async callback (providerId: string, query: Record<string, string | undefined>, rawQuery: string, source: EventSource): Promise<CallbackOutcome> {
    const { db, providers } = this.deps
    const provider = providers.settings(providerId)
    const state = query.state
    // spent by this lookup, whatever follows
    const flow = state ? await takeOauthFlow(db, sha256(state)) : undefined
    if (!flow || flow.provider !== provider.id || flow.expiresAt.getTime() <= this.deps.clock()) throw stateInvalid()
    try {
      if (query.error !== undefined) {
        throw query.error === 'access_denied'
          ? new ApiError('provider_denied', `${provider.name} did not sign you in (cancelled or refused)`)
          : new ApiError('provider_error', `${provider.name} answered with an error`)
      }
      const claims = await this.exchange(provider, flow, state!, rawQuery)
      return await this.conclude(provider, flow, claims, source)
    } catch (err) {
      // the redirect URI is known: every failure goes back to the client, ours (a database error) too
      const refused = err instanceof ApiError ? err : new ApiError('internal_error', 'The sign-in could not be finished; try again', { cause: err })
      return { redirect: this.clientRedirect(flow, { error: refused.code }), refused, provider: provider.id, userId: flow.linkUserId ?? undefined }
    }
  }

  /** The code exchange with our PKCE verifier, and the ID token's signature, iss, aud, exp and nonce. */
  private async exchange (provider: OidcProviderSettings, flow: OauthFlow, state: string, rawQuery: string): Promise<ProviderClaims> {
    const { providers } = this.deps
    const configuration = await providers.configuration(provider)
    const client = await openidClient()
    // the URL the provider redirected to, as registered there (not as this request's Host says)
    const currentUrl = new URL(`${providers.callbackUrl(provider)}?${rawQuery}`)
    let claims
    try {
      const tokens = await client.authorizationCodeGrant(configuration, currentUrl, {
        pkceCodeVerifier: flow.codeVerifier, expectedState: state, expectedNonce: flow.nonce, idTokenExpected: true,
      })
      claims = tokens.claims()
    } catch (err) {
      throw providerFailure(provider, err)
    }
    // OpenID Connect caps sub at 255 ASCII characters; a NUL cannot be stored in a text column
    if (!claims || typeof claims.sub !== 'string' || !claims.sub || claims.sub.length > 255 || claims.sub.includes('\0')) {
      throw new ApiError('id_token_invalid', `${provider.name} sent an ID token without a usable subject`)
    }
    const email = typeof claims.email === 'string' ? claims.email.trim().toLowerCase() : undefined
    const name = typeof claims.name === 'string' ? claims.name.trim().replace(/\0/g, '').slice(0, 100) : undefined
    return {
      subject: claims.sub,
      email: email && email.length <= 254 && EMAIL.test(email) ? email : undefined,
      // some providers send the claim as a string
      emailVerified: claims.email_verified === true || claims.email_verified === 'true',
      name: name || undefined,
    }
  }

  /** Who the identity is here, linked or made as the contract says, and the redirect that tells the client. */
  private async conclude (provider: OidcProviderSettings, flow: OauthFlow, claims: ProviderClaims, source: EventSource): Promise<CallbackOutcome> {
    const { db, events } = this.deps
    const now = this.now()
    if (flow.linkUserId) {
      const userId = flow.linkUserId
      const linked = await db.transaction(async tx => {
        const known = await findIdentity(tx, provider.id, claims.subject)
        if (known) return known.userId === userId
        // the signed-in user vouches for this identity, whatever the provider says of its email
        const identity = await insertIdentity(tx, { id: uuidv7(now.getTime()), userId, provider: provider.id, subject: claims.subject, email: claims.email ?? null, emailVerified: true, createdAt: now })
        if (identity) await events.record(tx, 'identity_linked', userId, source, { provider: provider.id, identityId: identity.id, linkedBy: 'signed_in_user' })
        return !!identity
      })
      if (!linked) throw new ApiError('identity_taken', `This ${provider.name} account is linked to another account already`)
      return { redirect: this.clientRedirect(flow, { linked: provider.id }), event: 'identity_linked', userId, provider: provider.id, linkedBy: 'signed_in_user' }
    }
    let outcome: { user: User, event: 'identity_sign_in' | 'identity_sign_up' | 'identity_linked', queuedMail: boolean }
    try {
      outcome = await db.transaction(async tx => this.resolveUser(tx, provider, claims, now, source))
    } catch (err) {
      if (uniqueViolation(err) === undefined) throw err
      // another callback made the account or linked the identity meanwhile (two first sign-ins at once):
      // once more, it is now found as it is
      try {
        outcome = await db.transaction(async tx => this.resolveUser(tx, provider, claims, now, source))
      } catch (again) {
        if (uniqueViolation(again) !== undefined) throw new ApiError('email_taken', 'An account with this email already exists', { cause: again })
        throw again
      }
    }
    if (outcome.queuedMail) this.deps.verification.queued()
    if (outcome.event === 'identity_sign_up') events.queued()
    const code = random(32)
    await insertOauthCode(db, {
      codeHash: sha256(code), userId: outcome.user.id, provider: provider.id, codeChallenge: flow.codeChallenge, createdAt: now, expiresAt: new Date(now.getTime() + OAUTH_CODE_TTL_MS),
    })
    return {
      redirect: this.clientRedirect(flow, { code }),
      event: outcome.event,
      userId: outcome.user.id,
      provider: provider.id,
      ...(outcome.event === 'identity_linked' ? { linkedBy: 'email' as const } : {}),
    }
  }

  private async resolveUser (tx: Executor, provider: OidcProviderSettings, claims: ProviderClaims, now: Date, source: EventSource) {
    const { events } = this.deps
    const known = await findIdentity(tx, provider.id, claims.subject)
    if (known) {
      const user = await findUserById(tx, known.userId)
      if (user) {
        await touchIdentity(tx, known.id, now)
        return { user, event: 'identity_sign_in' as const, queuedMail: false }
      }
    }
    if (!claims.email) throw new ApiError('provider_email_missing', `${provider.name} did not give an email address; allow it to share your email and try again`)
    const existing = await findUserByEmail(tx, claims.email)
    if (existing) {
      // Linking by email needs both sides to vouch for the address: otherwise whoever registered it
      // (here or there) without owning it would take over the other account.
      if (!claims.emailVerified || !existing.emailVerifiedAt) {
        throw new ApiError('email_taken', 'An account with this email already exists: sign in to it and link this provider from there')
      }
      const identityId = await this.link(tx, existing.id, provider, claims, now)
      await events.record(tx, 'identity_linked', existing.id, source, { provider: provider.id, identityId, linkedBy: 'email' })
      return { user: existing, event: 'identity_linked' as const, queuedMail: false }
    }
    const user = await insertUser(tx, {
      id: uuidv7(now.getTime()),
      email: claims.email,
      username: null,
      name: claims.name ?? null,
      passwordHash: null,
      emailVerifiedAt: claims.emailVerified ? now : null,
      createdAt: now,
      updatedAt: now,
    })
    const identityId = await this.link(tx, user.id, provider, claims, now)
    await events.record(tx, 'register', user.id, source, { method: 'provider', provider: provider.id, identityId })
    await events.webhook(tx, 'user.created', user)
    if (!claims.emailVerified) await this.deps.verification.queue(tx, user, now)
    return { user, event: 'identity_sign_up' as const, queuedMail: !claims.emailVerified }
  }

  private async link (tx: Executor, userId: string, provider: OidcProviderSettings, claims: ProviderClaims, now: Date) {
    const identity = await insertIdentity(tx, {
      id: uuidv7(now.getTime()), userId, provider: provider.id, subject: claims.subject, email: claims.email ?? null, emailVerified: claims.emailVerified, createdAt: now, lastUsedAt: now,
    })
    // another callback of the same identity won the race; this one changes nothing
    if (!identity) throw new ApiError('identity_taken', `This ${provider.name} account is linked to an account already`)
    return identity.id
  }

  /** The client's redirect URI with our answer and the client's own state, untouched. */
  private clientRedirect (flow: OauthFlow, params: Record<string, string>): URL {
    const url = new URL(flow.redirectUri)
    for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value)
    if (flow.clientState !== null) url.searchParams.set('state', flow.clientState)
    return url
  }

  /** Spends a one-time code: the user it was made for, when the verifier matches its challenge in time. */
  async redeem (code: string, codeVerifier: string): Promise<{ user: User, provider: string }> {
    const { db } = this.deps
    const row = await takeOauthCode(db, sha256(code))
    if (!row || row.expiresAt.getTime() <= this.deps.clock()) throw codeInvalid()
    const expected = Buffer.from(row.codeChallenge)
    const given = Buffer.from(s256(codeVerifier))
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) throw codeInvalid()
    const user = await findUserById(db, row.userId)
    if (!user) throw codeInvalid()
    return { user, provider: row.provider }
  }

  async list (userId: string): Promise<IdentityView[]> {
    return (await listIdentities(this.deps.db, userId)).map(i => ({ id: i.id, provider: i.provider, email: i.email, createdAt: i.createdAt.toISOString() }))
  }

  /** Unlinks one of the user's identities; 409 last_sign_in_method when nothing else would sign them in. */
  async unlink (userId: string, identityId: string, source: EventSource): Promise<void> {
    if (!isUuid(identityId)) throw new ApiError('not_found', 'No identity of yours has this id')
    const id = identityId.toLowerCase()
    await this.deps.db.transaction(async tx => {
      const methods = await lockSignInMethods(tx, userId)
      if (!methods?.identityIds.includes(id)) throw new ApiError('not_found', 'No identity of yours has this id')
      if (isLastSignInMethod(methods, id)) throw lastSignInMethod()
      await deleteIdentity(tx, userId, id)
      await this.deps.events.record(tx, 'identity_unlinked', userId, source, { identityId: id })
    })
  }
}

/** openid-client's errors as the contract's: the provider down, its refusal, or an ID token that failed a check. */
function providerFailure (provider: OidcProviderSettings, err: unknown): ApiError {
  const e = err as { name?: string, code?: string, status?: number, message?: string, cause?: { status?: number, message?: string } }
  const status = e.status ?? e.cause?.status
  const network = (err instanceof TypeError && e.message === 'fetch failed') || e.code === 'OAUTH_TIMEOUT' || e.code === 'OAUTH_ABORT'
  if (network || (typeof status === 'number' && status >= 500)) return providerUnavailable(provider, err)
  if (e.code === 'OAUTH_JWT_CLAIM_COMPARISON_FAILED' || e.code === 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED' || e.code === 'OAUTH_KEY_SELECTION_FAILED' ||
    (e.code === 'OAUTH_INVALID_RESPONSE' && /JWT signature/i.test(e.cause?.message ?? ''))) {
    return new ApiError('id_token_invalid', `The ID token ${provider.name} sent did not pass its checks`, { cause: err })
  }
  return new ApiError('provider_error', `${provider.name} refused the sign-in`, { cause: err })
}
