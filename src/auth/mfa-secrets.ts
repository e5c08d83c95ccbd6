import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes, randomInt } from 'node:crypto'
import { sha256 } from '../ids.js'

const VERSION = 1
const IV_BYTES = 12
const TAG_BYTES = 16

/**
 * What is kept of the second factors, under MFA_ENCRYPTION_KEY: TOTP secrets sealed with AES-256-GCM
 * (the user id as associated data, so a sealed secret moved to another row does not open), recovery
 * codes as HMACs under a key derived from it. A copy of the database alone reveals neither.
 */
export interface MfaSecrets {
  seal (userId: string, secret: string): string
  open (userId: string, sealed: string): string
  recoveryCodeHash (code: string): string
}

export function mfaSecrets (key: Buffer): MfaSecrets {
  const codeKey = Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), 'recovery-code', 32))
  return {
    seal (userId, secret) {
      const iv = randomBytes(IV_BYTES)
      const cipher = createCipheriv('aes-256-gcm', key, iv).setAAD(Buffer.from(userId))
      const body = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()])
      return Buffer.concat([Buffer.from([VERSION]), iv, body, cipher.getAuthTag()]).toString('base64url')
    },
    open (userId, sealed) {
      const raw = Buffer.from(sealed, 'base64url')
      if (raw[0] !== VERSION || raw.length < 1 + IV_BYTES + TAG_BYTES) throw new Error('sealed TOTP secret of an unknown format')
      const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(1, 1 + IV_BYTES)).setAAD(Buffer.from(userId))
      decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES))
      try {
        return Buffer.concat([decipher.update(raw.subarray(1 + IV_BYTES, raw.length - TAG_BYTES)), decipher.final()]).toString('utf8')
      } catch (err) {
        throw new Error('a stored TOTP secret does not open with MFA_ENCRYPTION_KEY: was the key changed? (README: the MFA encryption key)', { cause: err })
      }
    },
    recoveryCodeHash: code => createHmac('sha256', codeKey).update(code).digest('base64url'),
  }
}

// Crockford's base32: no i, l, o or u, so a code read aloud or copied by hand is not misread.
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz'
export const RECOVERY_CODE_COUNT = 10
const GROUPS = 3
const GROUP_LENGTH = 4

/** A recovery code: 12 base32 characters (60 random bits) in groups of four, e.g. `7k3q-m2xd-9hfa`. */
export function newRecoveryCode (): string {
  const groups: string[] = []
  for (let g = 0; g < GROUPS; g++) {
    let group = ''
    for (let i = 0; i < GROUP_LENGTH; i++) group += ALPHABET[randomInt(ALPHABET.length)]
    groups.push(group)
  }
  return groups.join('-')
}

/** A recovery code as typed: case, spaces and hyphens ignored, and the letters Crockford reads as digits (o, i, l) read so. */
export function normalizeRecoveryCode (input: string): string | undefined {
  const code = input.toLowerCase().replace(/[\s-]/g, '').replace(/o/g, '0').replace(/[il]/g, '1')
  return code.length === GROUPS * GROUP_LENGTH && [...code].every(c => ALPHABET.includes(c)) ? code : undefined
}

/** The single-use token between the two steps of a sign-in: 256 random bits; only its SHA-256 is stored. */
export const newMfaToken = () => randomBytes(32).toString('base64url')
export const mfaTokenHash = sha256
