import { createSigner, createVerifier } from 'fast-jwt'
import type { Config } from '../config.js'
import type { Aal, Role } from '../db/schema.js'
import { verificationKeyFromPem, type PublicJwk, type SigningKey } from './keys.js'

/** What an access token says: its user, its session, and (for other services) what the sign-in proved. */
export interface AccessClaims {
  sub: string
  sid: string
  jti: string
  iat: number
  role: Role
  email_verified: boolean
  aal: Aal
  amr: string[]
}

export interface AccessTokens {
  sign (claims: AccessClaims): string
  /** The user and session of a genuine token; null for anything else. `ignoreExpiration` serves logout. */
  verify (token: string, options?: { ignoreExpiration?: boolean }): { sub: string, sid: string } | null | 'unknown_key'
  /** Every key a token may be signed with: the signing key first, then retired ones (JWT_PREVIOUS_PUBLIC_KEYS). */
  publicKeys: PublicJwk[]
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** The unverified header's kid, only to choose a key; the verifier checks everything else. */
function kidOf (token: string): string {
  try {
    const header = JSON.parse(Buffer.from(token.slice(0, token.indexOf('.')), 'base64url').toString()) as { kid?: unknown }
    return typeof header.kid === 'string' ? header.kid : ''
  } catch {
    return ''
  }
}

type Verify = (token: string) => Record<string, unknown>

/** EdDSA access tokens (typ at+jwt, RFC 9068) with fast-jwt: one signer, one verifier per accepted key, built once. */
export function accessTokens (config: Config, key: SigningKey): AccessTokens {
  const { issuer, audience, accessTokenTtl } = config.jwt
  const signer = createSigner({
    key: key.privatePem, algorithm: 'EdDSA', kid: key.kid, iss: issuer, aud: audience, expiresIn: accessTokenTtl * 1000, header: { alg: 'EdDSA', typ: 'at+jwt' },
  })
  const verifyOptions = {
    algorithms: ['EdDSA' as const],
    allowedIss: issuer,
    allowedAud: audience,
    requiredClaims: ['iss', 'aud', 'sub', 'sid', 'jti', 'iat', 'exp'],
    clockTolerance: 30_000,
    checkTyp: 'at+jwt',
  }
  const previous = config.previousPublicKeysPem.map((pem, i) => verificationKeyFromPem(pem, `JWT_PREVIOUS_PUBLIC_KEYS (key ${i + 1})`))
    .filter(k => k.kid !== key.kid)
  const accepted = [{ kid: key.kid, publicPem: key.publicPem, jwk: key.jwk }, ...previous]
  const verifiers = new Map(accepted.map(k => [k.kid, {
    strict: createVerifier({ ...verifyOptions, key: k.publicPem }) as Verify,
    lenient: createVerifier({ ...verifyOptions, key: k.publicPem, ignoreExpiration: true }) as Verify,
  }]))
  return {
    sign: claims => signer(claims),
    verify (token, options) {
      const verifier = verifiers.get(kidOf(token))
      if (!verifier) return 'unknown_key'
      let payload: Record<string, unknown>
      try {
        payload = options?.ignoreExpiration ? verifier.lenient(token) : verifier.strict(token)
      } catch {
        return null
      }
      const { sub, sid } = payload
      if (typeof sub !== 'string' || typeof sid !== 'string' || !UUID.test(sub) || !UUID.test(sid)) return null
      return { sub, sid }
    },
    publicKeys: accepted.map(k => k.jwk),
  }
}
