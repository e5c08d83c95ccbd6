import type { AuthenticationResponseJSON } from '@simplewebauthn/server'
import type { Clock } from '../clock.js'
import type { Config } from '../config.js'
import { uniqueViolation, type Database } from '../db/client.js'
import { ApiError } from '../errors.js'
import { uuidv7 } from '../ids.js'
import { findUserByEmail, findUserByUsername, findUserForShare, insertUser } from '../repositories/users.js'
import { accountKey, type AttemptThrottle } from './attempt-throttle.js'
import type { EmailVerificationService } from './email-verification.js'
import type { FederationService } from './federation.js'
import { codeInvalid, MFA_CHALLENGE_MAX_FAILURES, type MfaService, type SecondFactorInput, type SecondFactorMethod } from './mfa.js'
import { assertPasswordPolicy, codePoints, dummyHash, hashPassword, MAX_PASSWORD_LENGTH, normalizePassword, verifyPassword } from './passwords.js'
import type { PasskeyService } from './passkeys.js'
import type { SecurityEvents } from './security-events.js'
import type { ClientMeta, IssuedTokens, Proof, SessionService, SignInMethod } from './sessions.js'
import { throttled } from './throttle.js'

const emailNotVerified = () => new ApiError('email_not_verified', 'Verify your email address first: follow the link we sent, or ask for a new one')
const accountSuspended = () => new ApiError('account_suspended', 'This account is suspended; contact the service\'s support')
const mfaTokenInvalid = () => new ApiError('mfa_token_invalid', 'The mfaToken is not valid, was already used, has expired or has had too many wrong codes: sign in again')

export interface SignInServiceDeps {
  db: Database
  config: Config
  clock: Clock
  sessions: SessionService
  verification: EmailVerificationService
  mfa: MfaService
  passkeys: PasskeyService
  federation: FederationService
  events: SecurityEvents
  /** Failed sign-ins per account (RATE_LIMIT_LOGIN_ACCOUNT per 15 minutes). */
  throttle: AttemptThrottle
}

/** A password proves one factor: NIST AAL1, RFC 8176 `pwd`. */
export const PASSWORD_PROOF: Proof = { aal: 'aal1', amr: ['pwd'] }

/** An identity provider's sign-in (RFC 8176 `fed`): one factor, whatever the provider asked for. */
export const FEDERATED_PROOF: Proof = { aal: 'aal1', amr: ['fed'] }

/** Postgres unique violations become the contract's 409s. */
export function conflictFrom (err: unknown): ApiError | undefined {
  const constraint = uniqueViolation(err)
  if (constraint === undefined) return undefined
  if (constraint.includes('username')) return new ApiError('username_taken', 'This username is already taken', { cause: err })
  return new ApiError('email_taken', 'An account with this email already exists', { cause: err })
}

/**
 * The ways to sign in: registration, password, and the second step of an account with a second factor.
 * Each ends in SessionService.open with what it proved.
 */
export class SignInService {
  constructor (private readonly deps: SignInServiceDeps) {}

  async register (input: { email: string, password: string, username?: string | undefined, name?: string | undefined, rememberMe?: boolean | undefined }, client: ClientMeta): Promise<IssuedTokens> {
    const { db, config, sessions, verification } = this.deps
    const password = normalizePassword(input.password)
    assertPasswordPolicy(password, { minLength: config.passwordMinLength, email: input.email, username: input.username })
    const passwordHash = await hashPassword(password)
    const now = new Date(this.deps.clock())
    try {
      const tokens = await db.transaction(async tx => {
        const user = await insertUser(tx, {
          id: uuidv7(now.getTime()), email: input.email, username: input.username ?? null, name: input.name || null, passwordHash, createdAt: now, updatedAt: now,
        })
        // the account, its verification mail and its first session: all or nothing
        await verification.queue(tx, user, now)
        await this.deps.events.webhook(tx, 'user.created', user)
        // a new account has no second factor and no suspension, so its password opens a session
        return await sessions.open(user, { ...PASSWORD_PROOF, method: 'register', rememberMe: input.rememberMe ?? false, client }, { ex: tx }) as IssuedTokens
      })
      verification.queued()
      return tokens
    } catch (err) {
      throw conflictFrom(err) ?? err
    }
  }

  async login (input: { email?: string | undefined, username?: string | undefined, password: string, rememberMe?: boolean | undefined }, client: ClientMeta): Promise<IssuedTokens> {
    const { db, config, throttle, sessions } = this.deps
    const user = input.email !== undefined ? await findUserByEmail(db, input.email) : await findUserByUsername(db, input.username!)
    // Keyed by the account when it exists, so email and username share one count; by the identifier otherwise.
    const key = user ? accountKey(user.id) : input.email !== undefined ? `email:${input.email}` : `username:${input.username!.toLowerCase()}`
    const gate = await throttle.reserve(key, new Date(this.deps.clock()))
    if (!gate.allowed) {
      await this.failed('password', user?.id ?? null, client, 'too_many_requests')
      throw throttled(gate.retryAfterSeconds, config.rateLimit.loginAccount, 'Too many failed sign-in attempts for this account; try again later')
    }
    const password = normalizePassword(input.password)
    // A password no account can have is refused without hashing; an unknown account (or one without a
    // password) costs the same hash.
    const valid = codePoints(password) <= MAX_PASSWORD_LENGTH &&
      await verifyPassword(user?.passwordHash ?? await dummyHash(), password) && !!user?.passwordHash
    if (!valid || !user) {
      await this.failed('password', user?.id ?? null, client, 'invalid_credentials')
      throw new ApiError('invalid_credentials', 'The email, username or password is not correct')
    }
    // after the password check, so it tells nothing to someone without the password
    if (!this.verifiedEnough(user)) {
      await throttle.clear(key)
      await this.failed('password', user.id, client, 'email_not_verified')
      throw emailNotVerified()
    }
    const rememberMe = input.rememberMe ?? false
    // A completed sign-in forgets the failures counted so far (a count kept in this database is cleared
    // by the statement that opens the session). An account with a second factor gets no session for a
    // password alone: the attempt stays counted until the second step succeeds.
    const tokens = await this.settle(user.id, await sessions.open(user, { ...PASSWORD_PROOF, method: 'password', rememberMe, client }, throttle.inDatabase ? { clearAttemptsKey: key } : {}), PASSWORD_PROOF, rememberMe, 'password', client)
    if (!throttle.inDatabase) await throttle.clear(key)
    return tokens
  }

  /**
   * What a finished first factor leads to: the tokens; 403 mfa_required (a pending second step) for an
   * account with a second factor; 403 account_suspended (recorded) for a suspended one.
   */
  private async settle (userId: string, outcome: IssuedTokens | 'second_factor' | 'suspended', first: Proof, rememberMe: boolean, method: SignInMethod, client: ClientMeta): Promise<IssuedTokens> {
    if (outcome === 'suspended') {
      await this.failed(method, userId, client, 'account_suspended')
      throw accountSuspended()
    }
    if (outcome === 'second_factor') throw await this.secondFactorRequired(userId, first, rememberMe)
    return outcome
  }

  /** A refused sign-in in the security history, in its own transaction; the account's when it is known. */
  private failed (method: SignInMethod, userId: string | null, client: ClientMeta, code: string) {
    return this.deps.events.record(this.deps.db, code === 'too_many_requests' ? 'rate_limited' : 'login_failure', userId, client, { method, code })
  }

  /**
   * A sign-in with a passkey (no account named: the credential names it). With user verification it is
   * two factors and opens an aal2 session; without, one, and an account with TOTP is asked for a code.
   */
  async loginWithPasskey (response: AuthenticationResponseJSON, rememberMe: boolean, client: ClientMeta): Promise<{ tokens: IssuedTokens, amr: string[] } | { clone: true, userId: string, passkeyId: string }> {
    const { sessions } = this.deps
    const outcome = await this.deps.passkeys.verifyAssertion(response)
    if (outcome === 'refused') {
      await this.failed('passkey', null, client, 'invalid_credentials')
      throw new ApiError('invalid_credentials', 'The passkey was not accepted')
    }
    if ('clone' in outcome) {
      await this.failed('passkey', outcome.userId, client, 'passkey_clone_suspected')
      return outcome
    }
    const { user, proof } = outcome
    if (!this.verifiedEnough(user)) {
      await this.failed('passkey', user.id, client, 'email_not_verified')
      throw emailNotVerified()
    }
    const tokens = await this.settle(user.id, await sessions.open(user, { ...proof, method: 'passkey', rememberMe, client }), proof, rememberMe, 'passkey', client)
    return { tokens, amr: proof.amr }
  }

  /**
   * The one-time code of an identity provider's callback, with the verifier of the client's code
   * challenge: a session, or 403 mfa_required for an account with a second factor, as /login.
   */
  async loginWithProvider (input: { code: string, codeVerifier: string, rememberMe?: boolean | undefined }, client: ClientMeta): Promise<IssuedTokens> {
    const { sessions, federation } = this.deps
    let user
    try {
      user = await federation.redeem(input.code, input.codeVerifier)
    } catch (err) {
      if (err instanceof ApiError) await this.failed('provider', null, client, err.code)
      throw err
    }
    if (!this.verifiedEnough(user.user)) {
      await this.failed('provider', user.user.id, client, 'email_not_verified')
      throw emailNotVerified()
    }
    const rememberMe = input.rememberMe ?? false
    return this.settle(user.user.id, await sessions.open(user.user, { ...FEDERATED_PROOF, method: 'provider', detail: { provider: user.provider }, rememberMe, client }), FEDERATED_PROOF, rememberMe, 'provider', client)
  }

  /** REQUIRE_EMAIL_VERIFICATION: no session before the email is verified. */
  private verifiedEnough (user: { emailVerifiedAt: Date | null }) {
    return !this.deps.config.mail.requireVerification || user.emailVerifiedAt !== null
  }

  private async secondFactorRequired (userId: string, first: Proof, rememberMe: boolean): Promise<ApiError> {
    const { mfaToken, methods } = await this.deps.mfa.challenge(userId, first, rememberMe)
    return new ApiError('mfa_required', 'Send a code of your authenticator app (or a recovery code) with this mfaToken to /login/mfa', { extensions: { mfaToken, methods } })
  }

  /**
   * The second step: an mfaToken from the first and a TOTP code or a recovery code. Counted per account
   * like a password (429 once locked, before the code is checked); five wrong codes void the token. The
   * code, the token and the new session are spent and made in one transaction.
   */
  async completeSecondFactor (input: { mfaToken: string, code?: string | undefined, recoveryCode?: string | undefined }, client: ClientMeta): Promise<{ tokens: IssuedTokens, amr: string[], method: SecondFactorMethod, recoveryCodesLeft?: number | undefined }> {
    const { db, config, throttle, sessions, mfa } = this.deps
    // A dead token (spent, expired, voided) is refused without counting: it can prove nothing, and a
    // client retrying after a lost answer should not use up the account's allowance.
    const challenge = await mfa.findChallenge(input.mfaToken)
    if (!challenge?.usable) throw mfaTokenInvalid()
    const key = accountKey(challenge.userId)
    const gate = await throttle.reserve(key, new Date(this.deps.clock()))
    if (!gate.allowed) {
      await this.failed('totp', challenge.userId, client, 'too_many_requests')
      throw throttled(gate.retryAfterSeconds, config.rateLimit.loginAccount, 'Too many failed sign-in attempts for this account; try again later')
    }
    const proof: SecondFactorInput = input.code !== undefined ? { code: input.code } : { recoveryCode: input.recoveryCode! }
    const method: SignInMethod = input.code !== undefined ? 'totp' : 'recovery_code'
    const outcome = await db.transaction(async tx => {
      // The account row first, as a suspension (or any change that ends sessions) takes it before the
      // pending sign-ins: the other order deadlocks with one running at the same moment.
      const user = await findUserForShare(tx, challenge.userId)
      if (!user) throw mfaTokenInvalid()
      const second = await mfa.verify(tx, challenge.userId, proof)
      if (!second) return 'wrong_code'
      // thrown, not returned: the rollback gives back the code verify() just spent
      if (!await mfa.spendChallenge(tx, challenge.id)) throw mfaTokenInvalid()
      const amr = [...challenge.amr, second.method]
      const tokens = await sessions.open(user, { aal: 'aal2', amr, method, rememberMe: challenge.rememberMe, client }, {
        ex: tx, ...(throttle.inDatabase ? { clearAttemptsKey: key } : {}),
      })
      // thrown for the same reason: a suspended account keeps its code
      if (tokens === 'suspended') throw accountSuspended()
      if (second.method === 'rec') {
        await this.deps.events.record(tx, 'recovery_code_used', user.id, { ...client, sessionId: (tokens as IssuedTokens).sessionId }, { route: 'login', recoveryCodesLeft: second.recoveryCodesLeft })
        await this.deps.events.notify(tx, user.email, 'recovery_code_used', { recoveryCodesLeft: String(second.recoveryCodesLeft ?? 0) })
      }
      return { tokens: tokens as IssuedTokens, amr, method: second.method, recoveryCodesLeft: second.recoveryCodesLeft }
    }).catch(async (err: unknown) => {
      if (err instanceof ApiError && err.code === 'account_suspended') await this.failed(method, challenge.userId, client, 'account_suspended')
      throw err
    })
    if (outcome === 'wrong_code') {
      const failures = await mfa.failChallenge(challenge.id)
      await this.failed(method, challenge.userId, client, 'mfa_code_invalid')
      throw codeInvalid(failures !== undefined && failures < MFA_CHALLENGE_MAX_FAILURES
        ? 'The code is not valid (a code is accepted once, within a minute of its time)'
        : 'The code is not valid, and this mfaToken has had too many wrong codes: sign in again')
    }
    if (outcome.method === 'rec') this.deps.events.queued()
    if (!throttle.inDatabase) await throttle.clear(key)
    return outcome
  }
}
