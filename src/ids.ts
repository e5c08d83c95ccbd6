import { createHash, randomUUID } from 'node:crypto'

/**
 * A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, version 7, then 74 random bits, so ids sort by
 * creation time and index well. Built on `randomUUID`, which Node serves from a pooled buffer of
 * random bytes (the `uuid` package's v7 asks the system for fresh random values on every call, which
 * showed in the refresh profile). Not ordered within one millisecond
 * (nothing here relies on that).
 */
export function uuidv7 (now = Date.now()): string {
  const random = randomUUID()
  const time = now.toString(16).padStart(12, '0')
  return `${time.slice(0, 8)}-${time.slice(8)}-7${random.slice(15)}`
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
/** Ids from a path are checked by the service, not the schema: a malformed id is as unknown as any other (404). */
export const isUuid = (id: string) => UUID.test(id)

/** base64url(SHA-256(text)): how one-time tokens and codes are kept (and the S256 challenge of RFC 7636). */
export const sha256 = (text: string) => createHash('sha256').update(text).digest('base64url')
