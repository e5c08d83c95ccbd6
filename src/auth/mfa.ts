import type { Clock } from '../clock.js'
import type { Config } from '../config.js'
import type { Database, Executor } from '../db/client.js'
import { ApiError } from '../errors.js'
import { isUuid, uuidv7 } from '../ids.js'
import {
  acceptTotpStep, confirmTotpFactor, deleteSecondFactors, failMfaChallenge, findMfaChallenge, findTotpFactor, insertMfaChallenge, replaceRecoveryCodes, spendMfaChallenge,
  spendRecoveryCode, startTotpEnrolment,
} from '../repositories/mfa.js'
import { raiseSessionAssurance } from '../repositories/sessions.js'
import { findUserById, findUserForShare } from '../repositories/users.js'
import type { MfaMethod } from '../schemas/mfa.js'
import { accountKey, type AttemptThrottle } from './attempt-throttle.js'
import { mfaTokenHash, newMfaToken, newRecoveryCode, normalizeRecoveryCode, RECOVERY_CODE_COUNT, type MfaSecrets } from './mfa-secrets.js'
import type { EventSource, SecurityEvents } from './security-events.js'
import type { Proof, SessionService } from './sessions.js'
import { throttled } from './throttle.js'
import { matchingStep, newTotpSecret, otpauthUrl, qrSvg, totpCode } from './totp.js'

/** An mfaToken is good for five minutes and five wrong codes. */
export const MFA_CHALLENGE_TTL_MS = 5 * 60_000
export const MFA_CHALLENGE_MAX_FAILURES = 5

export interface MfaServiceDeps {
  db: Database
  config: Config
  clock: Clock
  sessions: SessionService
  secrets: MfaSecrets
  /** The per-account sign-in count: each wrong code counts toward it. */
  throttle: AttemptThrottle
  events: SecurityEvents
}

/** What proves the second factor: a TOTP code, a recovery code, or (management routes) either in `code`. */
export type SecondFactorInput = { code: string, recoveryCode?: undefined } | { code?: undefined, recoveryCode: string } | { either: string }

/** RFC 8176 method references: `otp` for an authenticator app's code, `rec` (this service's) for a recovery code. */
export type SecondFactorMethod = 'otp' | 'rec'

export const codeInvalid = (detail = 'The code is not valid (a code is accepted once, within a minute of its time)') => new ApiError('mfa_code_invalid', detail)
const notEnabled = () => new ApiError('mfa_not_enabled', 'Two-factor sign-in is not on for this account')

/** Second factors: enrolment of an authenticator app, recovery codes, the checks of both, and the pause a sign-in makes for them. */
export class MfaService {
  constructor (private readonly deps: MfaServiceDeps) {}

  private now () { return new Date(this.deps.clock()) }

  private newRecoveryCodes () {
    const codes = Array.from({ length: RECOVERY_CODE_COUNT }, newRecoveryCode)
    return { codes, hashes: codes.map(c => this.deps.secrets.recoveryCodeHash(normalizeRecoveryCode(c)!)) }
  }

  /** A new pending secret (replacing a pending one); 409 when TOTP is already on. */
  async enroll (user: { id: string, email: string }) {
    const secret = await newTotpSecret()
    const started = await startTotpEnrolment(this.deps.db, user.id, this.deps.secrets.seal(user.id, secret), this.now())
    if (!started) throw new ApiError('mfa_already_enabled', 'Two-factor sign-in is already on; turn it off first to enrol another app')
    const url = otpauthUrl(this.deps.config.mfa.issuer, user.email, secret)
    return { secret, otpauthUrl: url, qrSvg: await qrSvg(url) }
  }

  /**
   * Turns TOTP on with a code of the pending secret: ten recovery codes, this session raised to aal2, every
   * other session of the user ended (none of them proved the second factor).
   */
  async confirm (caller: { userId: string, email: string, sessionId: string } & Proof, input: string, source: EventSource): Promise<{ recoveryCodes: string[], otherSessionsEnded: number }> {
    const { db, secrets, sessions, events } = this.deps
    const now = this.now()
    const outcome = await db.transaction(async tx => {
      // the account row before this session's: a suspension takes them in that order
      await findUserForShare(tx, caller.userId)
      const factor = await findTotpFactor(tx, caller.userId)
      if (!factor || factor.confirmedAt) {
        return new ApiError('mfa_not_enrolling', factor ? 'Two-factor sign-in is already on; there is nothing to confirm' : 'Start with POST /mfa/totp/enroll')
      }
      const code = totpCode(input)
      const step = code === undefined ? undefined : await matchingStep(secrets.open(caller.userId, factor.secret), code, now.getTime())
      if (step === undefined) return codeInvalid('The code does not match the pending secret (check the time on the device)')
      const { codes, hashes } = this.newRecoveryCodes()
      // the same pending secret that was checked: a newer enrolment in between wins
      if (!await confirmTotpFactor(tx, { userId: caller.userId, sealedSecret: factor.secret, step, recoveryCodeHashes: hashes, now })) {
        return new ApiError('mfa_not_enrolling', 'The enrolment changed meanwhile; enrol again')
      }
      await raiseSessionAssurance(tx, caller.sessionId, 'aal2', [...new Set([...caller.amr, 'otp'])])
      const otherSessionsEnded = await sessions.endAll(caller.userId, 'mfa_enabled', { exceptId: caller.sessionId, ex: tx })
      await events.record(tx, 'mfa_enabled', caller.userId, source, { method: 'totp', otherSessionsEnded })
      await events.notify(tx, caller.email, 'mfa_enabled')
      return { recoveryCodes: codes, otherSessionsEnded }
    })
    if (outcome instanceof ApiError) throw outcome
    events.queued()
    return outcome
  }

  /**
   * Checks a second factor, spending it: a TOTP step is accepted once (later codes only), a recovery code
   * once. In the caller's transaction, so the spending commits or rolls back with what it unlocks.
   */
  async verify (ex: Executor, userId: string, input: SecondFactorInput): Promise<{ method: SecondFactorMethod, recoveryCodesLeft?: number } | undefined> {
    const totpInput = 'either' in input ? input.either : input.code
    const code = totpInput === undefined ? undefined : totpCode(totpInput)
    if (code !== undefined) {
      const factor = await findTotpFactor(ex, userId)
      if (!factor?.confirmedAt) return undefined
      const step = await matchingStep(this.deps.secrets.open(userId, factor.secret), code, this.now().getTime())
      if (step === undefined || (factor.lastStep !== null && step <= factor.lastStep)) return undefined
      // the condition is checked again in the update, so two requests with one code cannot both pass
      return await acceptTotpStep(ex, userId, step) ? { method: 'otp' } : undefined
    }
    const recovery = normalizeRecoveryCode('either' in input ? input.either : input.recoveryCode ?? '')
    if (recovery === undefined) return undefined
    const left = await spendRecoveryCode(ex, userId, this.deps.secrets.recoveryCodeHash(recovery))
    return left === undefined ? undefined : { method: 'rec', recoveryCodesLeft: left }
  }

  /**
   * Runs `action` if `code` (TOTP or recovery) proves the second factor, in one transaction with its
   * spending. A wrong code counts toward the account's sign-in limit, like a wrong password; once it is
   * reached this answers 429 without checking.
   */
  private async withSecondFactor<T> (user: { id: string, email: string }, code: string, source: EventSource, action: (tx: Executor) => Promise<T>) {
    const { db, throttle, config, events } = this.deps
    const userId = user.id
    const factor = await findTotpFactor(db, userId)
    if (!factor?.confirmedAt) throw notEnabled()
    const key = accountKey(userId)
    const gate = await throttle.reserve(key, this.now())
    if (!gate.allowed) throw throttled(gate.retryAfterSeconds, config.rateLimit.loginAccount, 'Too many failed attempts for this account; try again later')
    const outcome = await db.transaction(async tx => {
      const proof = await this.verify(tx, userId, { either: code })
      if (!proof) return undefined
      if (proof.method === 'rec') {
        await events.record(tx, 'recovery_code_used', userId, source, { recoveryCodesLeft: proof.recoveryCodesLeft })
        // the action replaces or removes the codes, so a count left would be wrong by the time it is read
        await events.notify(tx, user.email, 'recovery_code_used')
      }
      return { proof, result: await action(tx) }
    })
    if (!outcome) throw codeInvalid()
    await throttle.clear(key)
    events.queued()
    return outcome
  }

  /** Ten new recovery codes for a current code or an unused recovery code; the old ones are void. */
  async regenerateRecoveryCodes (user: { id: string, email: string }, code: string, source: EventSource) {
    const { codes, hashes } = this.newRecoveryCodes()
    const { proof } = await this.withSecondFactor(user, code, source, async tx => {
      if (!await replaceRecoveryCodes(tx, user.id, hashes)) throw notEnabled()
      await this.deps.events.record(tx, 'recovery_codes_regenerated', user.id, source)
      await this.deps.events.notify(tx, user.email, 'recovery_codes_regenerated')
    })
    return { recoveryCodes: codes, method: proof.method }
  }

  /** TOTP and recovery codes removed, for a current code or an unused recovery code: back to one factor. */
  async disable (user: { id: string, email: string }, code: string, source: EventSource) {
    const { proof } = await this.withSecondFactor(user, code, source, async tx => {
      await deleteSecondFactors(tx, user.id)
      await this.deps.events.record(tx, 'mfa_disabled', user.id, source, { method: 'totp' })
      await this.deps.events.notify(tx, user.email, 'mfa_disabled')
    })
    return { method: proof.method }
  }

  /** A lost device: an admin removes the user's second factors and ends their sessions. 404 for no such user. */
  async reset (userId: string, source: EventSource): Promise<{ removed: boolean, sessionsEnded: number }> {
    const user = isUuid(userId) ? await findUserById(this.deps.db, userId.toLowerCase()) : undefined
    if (!user) throw new ApiError('not_found', 'No user has this id')
    const outcome = await this.deps.db.transaction(async tx => {
      const removed = await deleteSecondFactors(tx, user.id)
      const sessionsEnded = await this.deps.sessions.endAll(user.id, 'mfa_reset_by_admin', { ex: tx })
      await this.deps.events.record(tx, 'admin_mfa_reset', user.id, source, { removed, sessionsEnded })
      if (removed) await this.deps.events.notify(tx, user.email, 'mfa_disabled')
      return { removed, sessionsEnded }
    })
    this.deps.events.queued()
    return outcome
  }

  /** The pause after a first factor: a single-use token for /login/mfa, and the methods it accepts. */
  async challenge (userId: string, first: Proof, rememberMe: boolean): Promise<{ mfaToken: string, methods: MfaMethod[] }> {
    const { db } = this.deps
    const now = this.now()
    const mfaToken = newMfaToken()
    await insertMfaChallenge(db, {
      id: uuidv7(now.getTime()), userId, tokenHash: mfaTokenHash(mfaToken), amr: first.amr, rememberMe, createdAt: now, expiresAt: new Date(now.getTime() + MFA_CHALLENGE_TTL_MS),
    })
    const factor = await findTotpFactor(db, userId)
    const methods: MfaMethod[] = ['totp']
    if (factor && factor.recoveryCodes.length > 0) methods.push('recovery_code')
    return { mfaToken, methods }
  }

  /** The challenge of an mfaToken, whatever its state; undefined for a token never issued. */
  findChallenge (mfaToken: string) {
    return findMfaChallenge(this.deps.db, mfaTokenHash(mfaToken), this.now(), MFA_CHALLENGE_MAX_FAILURES)
  }

  /** Spends a usable challenge (the second step succeeded); false when another request spent it first or it is no longer usable. */
  spendChallenge (ex: Executor, id: string) {
    return spendMfaChallenge(ex, id, this.now(), MFA_CHALLENGE_MAX_FAILURES)
  }

  /** Counts a wrong code against a challenge; the failures so far, or undefined when it was no longer usable. */
  failChallenge (id: string) {
    return failMfaChallenge(this.deps.db, id, this.now(), MFA_CHALLENGE_MAX_FAILURES)
  }
}
