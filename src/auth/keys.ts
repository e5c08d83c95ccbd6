import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, hkdfSync, randomBytes, type KeyObject } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ConfigError, MFA_KEY_BYTES, type Config } from '../config.js'

export interface PublicJwk { kty: 'OKP', crv: 'Ed25519', x: string, kid: string, alg: 'EdDSA', use: 'sig' }

export interface SigningKey {
  privatePem: string
  publicPem: string
  /** RFC 7638 thumbprint of the public key: every instance holding the key agrees on it. */
  kid: string
  jwk: PublicJwk
  /** Secret for deriving the one-time tokens sent by email from their row ids (HKDF, another label). */
  mailSecret: Buffer
}

function thumbprint (x: string): string {
  // RFC 7638: required members only, lexicographic order, no whitespace
  return createHash('sha256').update(JSON.stringify({ crv: 'Ed25519', kty: 'OKP', x })).digest('base64url')
}

export interface VerificationKey { kid: string, publicPem: string, jwk: PublicJwk }

/** A retired key's public half: still accepted and published, never used to sign. */
export function verificationKeyFromPem (pem: string, source: string): VerificationKey {
  let key: KeyObject
  try {
    key = createPublicKey(pem)
  } catch {
    throw new ConfigError(`${source} holds a PEM block that is not a readable public key`)
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new ConfigError(`${source} must hold Ed25519 keys (got ${key.asymmetricKeyType ?? 'unknown'})`)
  const { x } = key.export({ format: 'jwk' }) as { x: string }
  const kid = thumbprint(x)
  return { kid, publicPem: key.export({ format: 'pem', type: 'spki' }).toString(), jwk: { kty: 'OKP', crv: 'Ed25519', x, kid, alg: 'EdDSA', use: 'sig' } }
}

export function signingKeyFromPem (pem: string, source: string): SigningKey {
  let key: KeyObject
  try {
    key = createPrivateKey(pem)
  } catch {
    throw new ConfigError(`${source} is not a readable PEM private key`)
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new ConfigError(`${source} must be an Ed25519 key (got ${key.asymmetricKeyType ?? 'unknown'})`)
  }
  const pub = createPublicKey(key)
  const { x } = pub.export({ format: 'jwk' }) as { x: string }
  const kid = thumbprint(x)
  const der = key.export({ format: 'der', type: 'pkcs8' })
  return {
    privatePem: key.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicPem: pub.export({ format: 'pem', type: 'spki' }).toString(),
    kid,
    jwk: { kty: 'OKP', crv: 'Ed25519', x, kid, alg: 'EdDSA', use: 'sig' },
    mailSecret: Buffer.from(hkdfSync('sha256', der, Buffer.alloc(0), 'email-token', 32)),
  }
}

export function generateSigningKey (): SigningKey {
  const { privateKey } = generateKeyPairSync('ed25519')
  return signingKeyFromPem(privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), 'generated key')
}

/**
 * The key from JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_FILE. Outside production a key is generated once
 * into the data folder; `generatedPath` tells the caller to say so in the log.
 */
export function resolveSigningKey (config: Config): { key: SigningKey, generatedPath?: string, path?: string } {
  if (config.jwt.privateKeyPem) return { key: signingKeyFromPem(config.jwt.privateKeyPem, 'JWT_PRIVATE_KEY') }
  if (config.jwt.privateKeyFile) {
    let pem: string
    try {
      pem = readFileSync(config.jwt.privateKeyFile, 'utf8')
    } catch (err) {
      throw new ConfigError(`JWT_PRIVATE_KEY_FILE cannot be read: ${(err as NodeJS.ErrnoException).code ?? 'error'}`)
    }
    return { key: signingKeyFromPem(pem, 'JWT_PRIVATE_KEY_FILE') }
  }
  if (config.env === 'production') {
    throw new ConfigError('JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_FILE must be set in production (an Ed25519 private key in PEM)')
  }
  const path = join(config.dataDir, 'jwt-private-key.pem')
  if (existsSync(path)) return { key: signingKeyFromPem(readFileSync(path, 'utf8'), path), path }
  const key = generateSigningKey()
  mkdirSync(config.dataDir, { recursive: true })
  writeFileSync(path, key.privatePem, { mode: 0o600, flag: 'wx' })
  return { key, generatedPath: path, path }
}

export interface RefreshSecrets {
  /** Issues and checks refresh tokens. */
  current: Buffer
  /** Retired secrets: tokens made with them are still accepted (and rotate onto the current one). */
  previous: Buffer[]
}

/**
 * A secret kept in a file of the data folder outside production: read when it is there, generated
 * (base64 of `bytes` random bytes, mode 0600) when it is not. `generatedPath` tells the caller to say so.
 */
function developmentSecret (config: Config, file: string, bytes: number, exact: boolean): { secret: Buffer, generatedPath?: string, path: string } {
  const path = join(config.dataDir, file)
  if (existsSync(path)) {
    const secret = Buffer.from(readFileSync(path, 'utf8').trim(), 'base64')
    if (exact ? secret.length !== bytes : secret.length < bytes) {
      throw new ConfigError(`${path} must hold base64 of ${exact ? 'exactly' : 'at least'} ${bytes} bytes; delete it to have a new one generated`)
    }
    return { secret, path }
  }
  const secret = randomBytes(bytes)
  mkdirSync(config.dataDir, { recursive: true })
  writeFileSync(path, `${secret.toString('base64')}\n`, { mode: 0o600, flag: 'wx' })
  return { secret, generatedPath: path, path }
}

/**
 * REFRESH_TOKEN_SECRET, apart from the signing key, so rotating that key signs nobody out. Outside
 * production one is generated once into the data folder.
 */
export function resolveRefreshSecrets (config: Config): { secrets: RefreshSecrets, generatedPath?: string, path?: string } {
  const previous = config.refresh.previousSecrets
  if (config.refresh.secret) return { secrets: { current: config.refresh.secret, previous } }
  if (config.env === 'production') {
    throw new ConfigError('REFRESH_TOKEN_SECRET must be set in production (base64 of at least 32 random bytes, e.g. openssl rand -base64 32)')
  }
  const { secret, ...where } = developmentSecret(config, 'refresh-token-secret', 32, false)
  return { secrets: { current: secret, previous }, ...where }
}

/** MFA_ENCRYPTION_KEY, the AES-256-GCM key of stored TOTP secrets. Outside production one is generated once into the data folder. */
export function resolveMfaKey (config: Config): { key: Buffer, generatedPath?: string, path?: string } {
  if (config.mfa.encryptionKey) return { key: config.mfa.encryptionKey }
  if (config.env === 'production') {
    throw new ConfigError('MFA_ENCRYPTION_KEY must be set in production (base64 of exactly 32 random bytes, e.g. openssl rand -base64 32)')
  }
  const { secret, ...where } = developmentSecret(config, 'mfa-encryption-key', MFA_KEY_BYTES, true)
  return { key: secret, ...where }
}
