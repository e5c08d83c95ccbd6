// Access tokens as the service signs them (src/auth/access-tokens.ts): Ed25519 with fast-jwt, typ at+jwt,
// the key's kid, the service's default issuer, audience and lifetime.
import { createSigner } from 'fast-jwt'
import type { Aal, Role } from '../src/db/schema.js'
import type { SigningKey } from '../src/auth/keys.js'
import { uuidv7 } from '../src/ids.js'

/** What a token says about its session; jti and iat are added at signing. */
export interface SessionClaims { sub: string, sid: string, role: Role, email_verified: boolean, aal: Aal, amr: string[] }

export function accessTokenSigner (key: SigningKey) {
  const signer = createSigner({
    key: key.privatePem, algorithm: 'EdDSA', kid: key.kid, iss: 'auth-api', aud: 'auth-api', expiresIn: 900_000, header: { alg: 'EdDSA', typ: 'at+jwt' },
  })
  return (claims: SessionClaims): string => signer({ ...claims, jti: uuidv7(), iat: Math.floor(Date.now() / 1000) })
}
