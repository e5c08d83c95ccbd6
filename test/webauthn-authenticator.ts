// A software WebAuthn authenticator for tap tests: it answers the JSON options of @simplewebauthn/server
// with the JSON a browser would post (attestation "none", discoverable credentials), and can tamper with
// what it produced. CBOR and COSE go through @simplewebauthn/server/helpers; keys and signatures through
// node:crypto.
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto'
import { cose, isoBase64URL, isoCBOR, isoUint8Array } from '@simplewebauthn/server/helpers'
import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server'

export type SoftAlgorithm = 'ES256' | 'Ed25519' | 'RS256'

export const COSE_ALGORITHM: Record<SoftAlgorithm, number> = {
  ES256: cose.COSEALG.ES256,
  Ed25519: cose.COSEALG.EdDSA,
  RS256: cose.COSEALG.RS256,
}

/** A resident key held by the authenticator. */
export interface SoftCredential {
  /** base64url credential id (the response's `id` / `rawId`) */
  id: string
  algorithm: SoftAlgorithm
  rpId: string
  /** base64url user handle: `creationOptions.user.id`, returned as `response.userHandle` */
  userHandle: string
  /** the signature counter of the last response */
  counter: number
  privateKey: KeyObject
  publicKey: KeyObject
  /** the COSE public key as in the attested credential data (what the server stores) */
  cosePublicKey: Uint8Array
}

export interface RegisterContext {
  /** the origin written into clientDataJSON, e.g. 'http://localhost:3000' */
  origin: string
  /** hashed into authenticatorData; default `creationOptions.rp.id`, else the origin's host */
  rpId?: string
  /** sets the UV flag; default true */
  userVerified?: boolean
  /** clientDataJSON type; default 'webauthn.create' */
  type?: string
  /** clientDataJSON challenge; default `creationOptions.challenge` */
  challenge?: string
  /** sets the BE and BS flags (a synced passkey: deviceType 'multiDevice'); default false */
  backedUp?: boolean
  /** answer with this held credential again (same id and key) instead of creating one; skips excludeCredentials */
  credentialId?: string
}

export interface AuthenticateContext {
  origin: string
  /** hashed into authenticatorData; default `requestOptions.rpId`, else the credential's RP ID */
  rpId?: string
  /** sets the UV flag; default true */
  userVerified?: boolean
  /** which held credential answers; default the first of allowCredentials held, else the last registered */
  credentialId?: string
  /** the signature counter of this response (not kept: the next one continues from the last counted use) */
  counter?: number
  /** clientDataJSON type; default 'webauthn.get' */
  type?: string
  /** clientDataJSON challenge; default `requestOptions.challenge` */
  challenge?: string
  /** the user handle sent; default the credential's, null sends none */
  userHandle?: string | null
}

export interface SoftAuthenticator {
  /** the algorithm of new credentials */
  readonly algorithm: SoftAlgorithm
  /** held credentials, oldest first (mutable, for tampering) */
  readonly credentials: SoftCredential[]
  /** a held credential by id; without an id the last registered. Throws if none. */
  credential (id?: string): SoftCredential
  register (creationOptions: PublicKeyCredentialCreationOptionsJSON, ctx: RegisterContext): RegistrationResponseJSON
  authenticate (requestOptions: PublicKeyCredentialRequestOptionsJSON, ctx: AuthenticateContext): AuthenticationResponseJSON
  /** signs an assertion again (after editing it) with its credential's key, or with `privateKey` */
  resign (response: AuthenticationResponseJSON, privateKey?: KeyObject): AuthenticationResponseJSON
  /** the response as a phishing page would get it: clientDataJSON names `origin`, assertions validly re-signed */
  withOrigin<T extends RegistrationResponseJSON | AuthenticationResponseJSON> (response: T, origin: string): T
  /** a second authenticator holding copies of the same keys and counters (a cloned authenticator) */
  clone (): SoftAuthenticator
}

const FLAG_UP = 0x01
const FLAG_UV = 0x04
const FLAG_BE = 0x08
const FLAG_BS = 0x10
const FLAG_AT = 0x40

type Bytes = Uint8Array<ArrayBuffer>

const bytes = (data: Uint8Array): Bytes => new Uint8Array(data)
const sha256 = (data: Uint8Array | string): Bytes => bytes(createHash('sha256').update(data).digest())
const b64url = (data: Uint8Array): string => isoBase64URL.fromBuffer(bytes(data))
const fromB64url = (text: string): Bytes => bytes(isoBase64URL.toBuffer(text))

function uint32 (n: number): Bytes {
  const out = new Uint8Array(4)
  new DataView(out.buffer).setUint32(0, n >>> 0)
  return out
}

/** A key pair for `algorithm` (ES256: P-256, RS256: 2048-bit RSA). */
export function generateCredentialKey (algorithm: SoftAlgorithm): { privateKey: KeyObject, publicKey: KeyObject } {
  switch (algorithm) {
    case 'ES256': return generateKeyPairSync('ec', { namedCurve: 'P-256' })
    case 'Ed25519': return generateKeyPairSync('ed25519')
    case 'RS256': return generateKeyPairSync('rsa', { modulusLength: 2048 })
  }
}

function cosePublicKey (algorithm: SoftAlgorithm, publicKey: KeyObject): Bytes {
  const jwk = publicKey.export({ format: 'jwk' })
  const part = (name: 'x' | 'y' | 'n' | 'e'): Bytes => fromB64url(jwk[name] ?? '')
  const { COSEKEYS, COSEKTY, COSECRV } = cose
  const key = new Map<number, number | Bytes>([[COSEKEYS.alg, COSE_ALGORITHM[algorithm]]])
  switch (algorithm) {
    case 'ES256':
      key.set(COSEKEYS.kty, COSEKTY.EC2).set(COSEKEYS.crv, COSECRV.P256).set(COSEKEYS.x, part('x')).set(COSEKEYS.y, part('y'))
      break
    case 'Ed25519':
      key.set(COSEKEYS.kty, COSEKTY.OKP).set(COSEKEYS.crv, COSECRV.ED25519).set(COSEKEYS.x, part('x'))
      break
    case 'RS256':
      key.set(COSEKEYS.kty, COSEKTY.RSA).set(COSEKEYS.n, part('n')).set(COSEKEYS.e, part('e'))
      break
  }
  // kty first, as authenticators write it
  return bytes(isoCBOR.encode(new Map([...key].sort(([a], [b]) => (a === COSEKEYS.kty ? -1 : b === COSEKEYS.kty ? 1 : 0)))))
}

/** ES256: DER (as WebAuthn requires), Ed25519: raw 64 bytes, RS256: PKCS#1 v1.5 with SHA-256. */
function signWith (algorithm: SoftAlgorithm, privateKey: KeyObject, data: Uint8Array): Bytes {
  return bytes(sign(algorithm === 'Ed25519' ? null : 'sha256', data, privateKey))
}

function clientData (type: string, challenge: string, origin: string): string {
  return b64url(Buffer.from(JSON.stringify({ type, challenge, origin, crossOrigin: false })))
}

function flags (userVerified: boolean, backedUp: boolean, attested: boolean): number {
  return FLAG_UP | (userVerified ? FLAG_UV : 0) | (backedUp ? FLAG_BE | FLAG_BS : 0) | (attested ? FLAG_AT : 0)
}

function algorithmOf (response: AuthenticationResponseJSON, held: SoftCredential | undefined, privateKey: KeyObject | undefined): SoftAlgorithm {
  if (!privateKey) {
    if (!held) throw new Error(`resign: credential ${response.id} is not held by this authenticator`)
    return held.algorithm
  }
  const type = privateKey.asymmetricKeyType
  return type === 'ec' ? 'ES256' : type === 'ed25519' ? 'Ed25519' : 'RS256'
}

function makeAuthenticator (algorithm: SoftAlgorithm, credentials: SoftCredential[]): SoftAuthenticator {
  const authenticator: SoftAuthenticator = {
    algorithm,
    credentials,

    credential (id) {
      const found = id === undefined ? credentials.at(-1) : credentials.find(c => c.id === id)
      if (!found) throw new Error(id === undefined ? 'no credential registered' : `credential ${id} is not held by this authenticator`)
      return found
    },

    register (options, ctx) {
      const rpId = ctx.rpId ?? options.rp.id ?? new URL(ctx.origin).hostname
      let credential: SoftCredential
      if (ctx.credentialId !== undefined) {
        credential = authenticator.credential(ctx.credentialId)
      } else {
        const alg = COSE_ALGORITHM[algorithm]
        if (!options.pubKeyCredParams.some(p => p.type === 'public-key' && p.alg === alg)) {
          throw new Error(`NotSupportedError: ${algorithm} (${alg}) is not in pubKeyCredParams`)
        }
        const excluded = credentials.find(c => options.excludeCredentials?.some(e => e.id === c.id))
        if (excluded) throw new Error(`InvalidStateError: credential ${excluded.id} is in excludeCredentials`)
        const keys = generateCredentialKey(algorithm)
        credential = {
          id: b64url(randomBytes(32)),
          algorithm,
          rpId,
          userHandle: options.user.id,
          counter: 0,
          ...keys,
          cosePublicKey: cosePublicKey(algorithm, keys.publicKey),
        }
        // a resident key replaces the one of the same RP and user
        const same = credentials.findIndex(c => c.rpId === rpId && c.userHandle === credential.userHandle)
        if (same >= 0) credentials.splice(same, 1)
        credentials.push(credential)
      }
      const rawId = fromB64url(credential.id)
      const idLength = new Uint8Array([rawId.length >> 8, rawId.length & 0xff])
      const authData = isoUint8Array.concat([
        sha256(rpId),
        new Uint8Array([flags(ctx.userVerified ?? true, ctx.backedUp ?? false, true)]),
        uint32(credential.counter),
        new Uint8Array(16), // AAGUID: none
        idLength,
        rawId,
        bytes(credential.cosePublicKey),
      ])
      const attestationObject = isoCBOR.encode(new Map<string, string | Map<string, string> | Uint8Array>([
        ['fmt', 'none'],
        ['attStmt', new Map<string, string>()],
        ['authData', authData],
      ]))
      return {
        ...envelope(credential.id),
        response: {
          clientDataJSON: clientData(ctx.type ?? 'webauthn.create', ctx.challenge ?? options.challenge, ctx.origin),
          attestationObject: b64url(attestationObject),
          authenticatorData: b64url(authData),
          transports: ['internal'],
          publicKeyAlgorithm: COSE_ALGORITHM[credential.algorithm],
          publicKey: b64url(credential.publicKey.export({ format: 'der', type: 'spki' })),
        },
      }
    },

    authenticate (options, ctx) {
      let credential: SoftCredential | undefined
      if (ctx.credentialId !== undefined) credential = authenticator.credential(ctx.credentialId)
      else if (options.allowCredentials?.length) {
        credential = credentials.find(c => options.allowCredentials?.some(a => a.id === c.id))
        if (!credential) throw new Error('NotAllowedError: no held credential is in allowCredentials')
      } else credential = authenticator.credential()
      const counter = ctx.counter ?? credential.counter + 1
      if (ctx.counter === undefined) credential.counter = counter
      const authData = isoUint8Array.concat([
        sha256(ctx.rpId ?? options.rpId ?? credential.rpId),
        new Uint8Array([flags(ctx.userVerified ?? true, false, false)]),
        uint32(counter),
      ])
      const userHandle = ctx.userHandle === undefined ? credential.userHandle : ctx.userHandle
      const response: AuthenticationResponseJSON = {
        ...envelope(credential.id),
        response: {
          clientDataJSON: clientData(ctx.type ?? 'webauthn.get', ctx.challenge ?? options.challenge, ctx.origin),
          authenticatorData: b64url(authData),
          signature: '',
          ...(userHandle === null ? {} : { userHandle }),
        },
      }
      return authenticator.resign(response)
    },

    resign (response, privateKey) {
      const held = credentials.find(c => c.id === response.id)
      const alg = algorithmOf(response, held, privateKey)
      const key = privateKey ?? held?.privateKey as KeyObject
      const signed = isoUint8Array.concat([
        fromB64url(response.response.authenticatorData),
        sha256(fromB64url(response.response.clientDataJSON)),
      ])
      return { ...response, response: { ...response.response, signature: b64url(signWith(alg, key, signed)) } }
    },

    withOrigin (response, origin) {
      const edited = editClientData(response, { origin })
      return ('signature' in edited.response ? authenticator.resign(edited as AuthenticationResponseJSON) : edited) as typeof response
    },

    clone () {
      return makeAuthenticator(algorithm, credentials.map(c => ({ ...c })))
    },
  }
  return authenticator
}

/** A software authenticator; new credentials use `algorithm` (default ES256). */
/** What every credential answer of a platform authenticator carries besides its response. */
const envelope = (id: string) => ({ id, rawId: id, type: 'public-key' as const, authenticatorAttachment: 'platform' as const, clientExtensionResults: {} })

export function softAuthenticator (options: { algorithm?: SoftAlgorithm } = {}): SoftAuthenticator {
  return makeAuthenticator(options.algorithm ?? 'ES256', [])
}

/** The decoded clientDataJSON of a response. */
export function readClientData (response: RegistrationResponseJSON | AuthenticationResponseJSON): Record<string, unknown> {
  return JSON.parse(isoBase64URL.toUTF8String(response.response.clientDataJSON))
}

/** Changes fields of clientDataJSON and nothing else: an assertion's signature no longer matches. */
export function editClientData<T extends RegistrationResponseJSON | AuthenticationResponseJSON> (response: T, patch: Record<string, unknown>): T {
  const data = { ...readClientData(response), ...patch }
  return { ...response, response: { ...response.response, clientDataJSON: b64url(Buffer.from(JSON.stringify(data))) } }
}

/** Flips one bit of an assertion's signature. */
export function tamperSignature (response: AuthenticationResponseJSON): AuthenticationResponseJSON {
  const signature = fromB64url(response.response.signature)
  const at = signature.length - 5
  signature[at] = (signature[at] ?? 0) ^ 0x01
  return { ...response, response: { ...response.response, signature: b64url(signature) } }
}
