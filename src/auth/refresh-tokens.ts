import { createHmac, timingSafeEqual } from 'node:crypto'
import type { RefreshSecrets } from './keys.js'

// A refresh token is version ‖ session id ‖ counter ‖ HMAC-SHA256 of those under REFRESH_TOKEN_SECRET,
// in base64url. The session row holds only the id and the counter, so a copy of the database cannot
// make a token; nothing is stored per rotation.
const VERSION = 1
const BODY_BYTES = 1 + 16 + 4
const MAC_BYTES = 32
const TOKEN = /^[A-Za-z0-9_-]{71}$/

export interface RefreshTokenClaims { sessionId: string, counter: number }

export interface RefreshTokens {
  /** The token for a session's counter: the same inputs always give the same token. */
  issue (sessionId: string, counter: number): string
  /** The session and counter of a genuine token; null for anything else, before any database work. */
  read (token: string): RefreshTokenClaims | null
}

const uuidBytes = (id: string) => Buffer.from(id.replace(/-/g, ''), 'hex')
const uuidText = (b: Buffer) => {
  const h = b.toString('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`
}
const mac = (secret: Buffer, body: Buffer) => createHmac('sha256', secret).update(body).digest()

export function refreshTokens (secrets: RefreshSecrets): RefreshTokens {
  const accepted = [secrets.current, ...secrets.previous]
  return {
    issue (sessionId, counter) {
      const body = Buffer.alloc(BODY_BYTES)
      body[0] = VERSION
      uuidBytes(sessionId).copy(body, 1)
      body.writeUInt32BE(counter, 17)
      return Buffer.concat([body, mac(secrets.current, body)]).toString('base64url')
    },
    read (token) {
      if (!TOKEN.test(token)) return null
      const raw = Buffer.from(token, 'base64url')
      // one spelling per token: base64url's last character has spare bits
      if (raw.length !== BODY_BYTES + MAC_BYTES || raw[0] !== VERSION || raw.toString('base64url') !== token) return null
      const body = raw.subarray(0, BODY_BYTES)
      const presented = raw.subarray(BODY_BYTES)
      if (!accepted.some(secret => timingSafeEqual(mac(secret, body), presented))) return null
      return { sessionId: uuidText(body.subarray(1, 17)), counter: body.readUInt32BE(17) }
    },
  }
}
