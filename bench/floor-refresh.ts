// The /refresh floor: the least work a correct counter rotation needs, behind a bare Fastify route. The
// token's MAC is checked in memory (a bad one is refused without the database), one UPDATE … RETURNING
// through postgres.js moves a live session's counter and returns its user, then an access token is signed
// as the service signs it and the successor computed.
import Fastify from 'fastify'
import postgres from 'postgres'
import { signingKeyFromPem } from '../src/auth/keys.js'
import { refreshTokens } from '../src/auth/refresh-tokens.js'
import type { Aal, Role } from '../src/db/schema.js'
import { accessTokenSigner } from './access-token.js'

// the service's pool size, passed by the bench
const sql = postgres(process.env.DATABASE_URL!, { max: Number(process.env.DATABASE_POOL_SIZE), onnotice: () => {} })
const codec = refreshTokens({ current: Buffer.from(process.env.REFRESH_TOKEN_SECRET!, 'base64'), previous: [] })
const sign = accessTokenSigner(signingKeyFromPem(process.env.JWT_PRIVATE_KEY!, 'JWT_PRIVATE_KEY'))
// the service's default REFRESH_TOKEN_TTL
const IDLE_MS = 43_200_000

interface Row { id: string, email: string, username: string | null, name: string | null, role: Role, email_verified_at: Date | null, created_at: Date, aal: Aal, amr: string[] }

const app = Fastify()
app.post('/refresh', async (request, reply) => {
  const { refreshToken } = request.body as { refreshToken?: unknown }
  const claims = typeof refreshToken === 'string' ? codec.read(refreshToken) : null
  if (!claims) return reply.code(401).send({ code: 'invalid_token' })
  const now = new Date()
  const [row] = await sql<Row[]>`
    update sessions s
    set refresh_counter = s.refresh_counter + 1, last_used_at = ${now}, refresh_expires_at = least(${new Date(now.getTime() + IDLE_MS)}, s.absolute_expires_at)
    from users u
    where s.id = ${claims.sessionId} and s.refresh_counter = ${claims.counter} and u.id = s.user_id
      and s.revoked_at is null and s.absolute_expires_at > ${now} and s.refresh_expires_at > ${now}
    returning u.id, u.email, u.username, u.name, u.role, u.email_verified_at, u.created_at, s.aal, s.amr`
  if (!row) return reply.code(401).send({ code: 'invalid_token' })
  return {
    accessToken: sign({ sub: row.id, sid: claims.sessionId, role: row.role, email_verified: row.email_verified_at !== null, aal: row.aal, amr: row.amr }),
    refreshToken: codec.issue(claims.sessionId, claims.counter + 1),
  }
})
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })
console.log('floor ready')
