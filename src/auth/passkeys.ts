import { randomBytes } from 'node:crypto'
import type {
  AuthenticationResponseJSON, PublicKeyCredentialCreationOptionsJSON, PublicKeyCredentialRequestOptionsJSON, RegistrationResponseJSON,
} from '@simplewebauthn/server'
import type { Clock } from '../clock.js'
import type { Config } from '../config.js'
import { uniqueViolation, type Database } from '../db/client.js'
import { ApiError } from '../errors.js'
import { isUuid, uuidv7 } from '../ids.js'
import {
  deletePasskey, findPasskeyByCredentialId, insertPasskey, insertWebauthnChallenge, listPasskeys, passkeyHandle, recordPasskeyUse, renamePasskey, spendWebauthnChallenge,
  type Passkey,
} from '../repositories/passkeys.js'
import { isLastSignInMethod, lockSignInMethods } from '../repositories/identities.js'
import { findUserById } from '../repositories/users.js'
import type { UserRow } from '../schemas/common.js'
import { lastSignInMethod } from './federation.js'
import type { EventSource, SecurityEvents } from './security-events.js'
import type { Proof } from './sessions.js'

// Loaded at the first ceremony: the library and its certificate-parsing dependencies hold memory that
// a process serving no passkey never needs.
let library: Promise<typeof import('@simplewebauthn/server')> | undefined
const webauthn = () => (library ??= import('@simplewebauthn/server'))

const fromB64 = (text: string) => new Uint8Array(Buffer.from(text, 'base64url'))
const toB64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url')

/** A ceremony's challenge is good for five minutes, once. */
export const WEBAUTHN_CHALLENGE_TTL_MS = 5 * 60_000
// COSE algorithm ids: Ed25519 (EdDSA), ES256, RS256
const ALGORITHMS = [-8, -7, -257]
const TRANSPORTS = new Set<string>(['ble', 'cable', 'hybrid', 'internal', 'nfc', 'smart-card', 'usb'])

export interface PasskeyServiceDeps { db: Database, config: Config, clock: Clock, events: SecurityEvents }

export interface PasskeyView { id: string, name: string, createdAt: string, lastUsedAt: string | null, backedUp: boolean, deviceType: 'singleDevice' | 'multiDevice' }
const view = (p: Passkey): PasskeyView => ({
  id: p.id, name: p.name, createdAt: p.createdAt.toISOString(), lastUsedAt: p.lastUsedAt?.toISOString() ?? null, backedUp: p.backedUp, deviceType: p.deviceType,
})

const invalidPasskey = (detail: string) => new ApiError('passkey_invalid', detail)
const notFound = () => new ApiError('not_found', 'No passkey of yours has this id')

/**
 * The challenge a response answers, from its clientDataJSON, and whether the ceremony ran in a frame of
 * another site (the library checks that only for sign-ins); undefined when it is not readable or is no
 * challenge this service issues (base64url: anything else, a NUL character say, is not looked up at all).
 */
function clientData (clientDataJSON: unknown): { challenge: string, crossOrigin: boolean } | undefined {
  try {
    // clientDataJSON is base64url of UTF-8 JSON (WebAuthn §5.8.1)
    const data = JSON.parse(Buffer.from(String(clientDataJSON), 'base64url').toString('utf8')) as { challenge?: unknown, crossOrigin?: unknown }
    if (typeof data.challenge !== 'string' || !/^[A-Za-z0-9_-]{1,1024}$/.test(data.challenge)) return undefined
    return { challenge: data.challenge, crossOrigin: data.crossOrigin === true }
  } catch {
    return undefined
  }
}

/**
 * Passkeys (WebAuthn, by @simplewebauthn/server): registering one to a signed-in user, managing them, and
 * checking a sign-in assertion. Challenges live in the database, so any instance finishes a ceremony.
 */
export class PasskeyService {
  constructor (private readonly deps: PasskeyServiceDeps) {}

  private now () { return new Date(this.deps.clock()) }

  private async challenge (purpose: 'register' | 'login', userId: string | null, challenge: string) {
    await insertWebauthnChallenge(this.deps.db, { challenge, purpose, userId, expiresAt: new Date(this.now().getTime() + WEBAUTHN_CHALLENGE_TTL_MS) })
  }

  /**
   * What every response is checked against: the challenge it answers, spent now (so it works once) and
   * issued for this purpose and user, this site's origins and RP ID. User verification is not required:
   * it only raises the assurance of a sign-in. Undefined when the challenge is not one of ours.
   */
  private async expectations (clientDataJSON: unknown, purpose: 'register' | 'login', userId: string | null) {
    const { db, config } = this.deps
    const data = clientData(clientDataJSON)
    if (!data || !await spendWebauthnChallenge(db, data.challenge, purpose, userId, this.now()) || data.crossOrigin) return undefined
    return { expectedChallenge: data.challenge, expectedOrigin: config.webauthn.origins, expectedRPID: config.webauthn.rpId, requireUserVerification: false }
  }

  async registrationOptions (user: { id: string, email: string, name: string | null }): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const { db, config } = this.deps
    const handle = await passkeyHandle(db, user.id, toB64(randomBytes(32)))
    if (!handle) throw new ApiError('invalid_token', 'The account of this token no longer exists')
    const existing = await listPasskeys(db, user.id)
    const options = await (await webauthn()).generateRegistrationOptions({
      rpName: config.webauthn.rpName,
      rpID: config.webauthn.rpId,
      userName: user.email,
      userDisplayName: user.name ?? user.email,
      userID: fromB64(handle),
      attestationType: 'none',
      excludeCredentials: existing.map(p => ({ id: p.credentialId, transports: p.transports })),
      authenticatorSelection: { residentKey: 'required', userVerification: 'preferred' },
      supportedAlgorithmIDs: ALGORITHMS,
      timeout: WEBAUTHN_CHALLENGE_TTL_MS,
    })
    await this.challenge('register', user.id, options.challenge)
    return options
  }

  /** Verifies a registration answer to this user's challenge and keeps the new passkey. */
  async register (user: { id: string, email: string }, response: RegistrationResponseJSON, name: string | undefined, source: EventSource): Promise<PasskeyView> {
    const { db, events } = this.deps
    const userId = user.id
    const now = this.now()
    const expected = await this.expectations(response.response?.clientDataJSON, 'register', userId)
    if (!expected) throw invalidPasskey('The challenge of this response is not one issued to you for a registration, was used, or has expired: ask for new options')
    let verified
    try {
      verified = await (await webauthn()).verifyRegistrationResponse({ response, ...expected, supportedAlgorithmIDs: ALGORITHMS })
    } catch (err) {
      throw new ApiError('passkey_invalid', 'The registration response did not verify (origin, RP ID, challenge, signature or format)', { cause: err })
    }
    if (!verified.verified) throw invalidPasskey('The registration response did not verify')
    const info = verified.registrationInfo
    try {
      const passkey = await db.transaction(async tx => {
        const added = await insertPasskey(tx, {
          id: uuidv7(now.getTime()),
          userId,
          credentialId: info.credential.id,
          publicKey: toB64(info.credential.publicKey),
          counter: info.credential.counter,
          // only the transports WebAuthn names: the list is the browser's, sent back in excludeCredentials
          transports: (info.credential.transports ?? []).filter(tr => TRANSPORTS.has(tr)).slice(0, 8),
          backedUp: info.credentialBackedUp,
          deviceType: info.credentialDeviceType,
          name: name?.trim() || 'Passkey',
          createdAt: now,
        })
        await events.record(tx, 'passkey_added', userId, source, { passkeyId: added.id, name: added.name })
        await events.notify(tx, user.email, 'passkey_added', { name: added.name })
        return added
      })
      events.queued()
      return view(passkey)
    } catch (err) {
      if (uniqueViolation(err) !== undefined) {
        throw new ApiError('passkey_exists', 'This passkey is already registered', { cause: err })
      }
      throw err
    }
  }

  async list (userId: string): Promise<PasskeyView[]> {
    return (await listPasskeys(this.deps.db, userId)).map(view)
  }

  async rename (userId: string, id: string, name: string): Promise<PasskeyView> {
    // the schema asks for one character; a name of spaces only would be stored empty once trimmed
    const trimmed = name.trim()
    if (!trimmed) throw new ApiError('validation_failed', 'The name must not be blank', { errors: [{ path: '/name', message: 'must not be blank' }] })
    const row = isUuid(id) ? await renamePasskey(this.deps.db, id.toLowerCase(), userId, trimmed) : undefined
    if (!row) throw notFound()
    return view(row)
  }

  /**
   * Deletes one of the user's passkeys; the last one too when a password or an identity provider still
   * signs the user in (409 last_sign_in_method otherwise).
   */
  async remove (userId: string, id: string, source: EventSource): Promise<void> {
    if (!isUuid(id)) throw notFound()
    const passkeyId = id.toLowerCase()
    await this.deps.db.transaction(async tx => {
      const methods = await lockSignInMethods(tx, userId)
      if (!methods?.passkeyIds.includes(passkeyId)) throw notFound()
      if (isLastSignInMethod(methods, passkeyId)) throw lastSignInMethod()
      await deletePasskey(tx, passkeyId, userId)
      await this.deps.events.record(tx, 'passkey_deleted', userId, source, { passkeyId })
    })
  }

  /** Options for a sign-in with any passkey of this site (discoverable credentials: no account named). */
  async signInOptions (): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const options = await (await webauthn()).generateAuthenticationOptions({
      rpID: this.deps.config.webauthn.rpId, allowCredentials: [], userVerification: 'preferred', timeout: WEBAUTHN_CHALLENGE_TTL_MS,
    })
    await this.challenge('login', null, options.challenge)
    return options
  }

  /**
   * The user a sign-in assertion proves, and what it proved: with user verification two factors (aal2,
   * hwk + user), without it one (aal1, hwk). `clone` when the signature counter went backwards.
   */
  async verifyAssertion (response: AuthenticationResponseJSON): Promise<{ user: UserRow, proof: Proof } | 'refused' | { clone: true, userId: string, passkeyId: string }> {
    const { db } = this.deps
    const now = this.now()
    const expected = await this.expectations(response.response?.clientDataJSON, 'login', null)
    if (!expected) return 'refused'
    const passkey = typeof response.id === 'string' ? await findPasskeyByCredentialId(db, response.id) : undefined
    if (!passkey) return 'refused'
    let verified
    try {
      verified = await (await webauthn()).verifyAuthenticationResponse({
        response,
        ...expected,
        // the counter is checked below, where a regression can be told apart from other failures
        credential: { id: passkey.credentialId, publicKey: fromB64(passkey.publicKey), counter: 0, transports: passkey.transports },
      })
    } catch {
      return 'refused'
    }
    if (!verified.verified) return 'refused'
    const user = await findUserById(db, passkey.userId)
    const handle = response.response.userHandle
    if (!user || (handle !== undefined && handle !== null && handle !== user.passkeyHandle)) return 'refused'
    const { newCounter, userVerified, credentialBackedUp } = verified.authenticationInfo
    // authenticators without a counter send 0 every time; any other must move forward
    if ((newCounter > 0 || passkey.counter > 0) && newCounter <= passkey.counter) return { clone: true, userId: user.id, passkeyId: passkey.id }
    if (!await recordPasskeyUse(db, passkey.id, newCounter, passkey.counter, credentialBackedUp, now)) return 'refused'
    return { user, proof: userVerified ? { aal: 'aal2', amr: ['hwk', 'user'] } : { aal: 'aal1', amr: ['hwk'] } }
  }
}
