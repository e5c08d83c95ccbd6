import { createHmac } from 'node:crypto'
import { sha256 } from '../ids.js'

// 32 bytes of HMAC-SHA256, base64url: 43 characters, 256 bits.
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/

/**
 * The token mailed for a row: derived from the row's random id with a server key, so a retry of the
 * mail renders the same link while the database holds only the token's hash (and no outbox body).
 */
export const emailTokenFor = (secret: Buffer, id: string) => createHmac('sha256', secret).update(`email-token:${id}`).digest('base64url')

export const hashEmailToken = sha256

export const isWellFormedEmailToken = (token: string) => TOKEN_PATTERN.test(token)
