import { createHash, createHmac, randomBytes } from 'node:crypto'

// 32 random bytes, base64url: 256 bits, 43 characters.
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/

export const newRefreshToken = () => randomBytes(32).toString('base64url')

export const isWellFormedRefreshToken = (token: string) => TOKEN_PATTERN.test(token)

/** Only this hash is stored. */
export const hashRefreshToken = (token: string) => createHash('sha256').update(token).digest('base64url')

/**
 * The successor of a token is derived from it, so every racer presenting the same spent token
 * within the grace window gets the same successor back, and no plaintext token is ever stored.
 */
export const successorOf = (secret: Buffer, token: string) => createHmac('sha256', secret).update(token).digest('base64url')
