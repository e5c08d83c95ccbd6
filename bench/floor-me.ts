// The /me floor: bare Fastify, the same JWT verification and the same single session query, nothing else.
// With FLOOR_FEATURES=1 it adds what the service does on every request and the bare floor does not (a
// logger at the service's level with the same redaction, the per-IP rate limit, CORS, the API security
// headers): ours against that shows how much of the gap to the bare floor those features are.
import cors from '@fastify/cors'
import rateLimit from '@fastify/rate-limit'
import { createVerifier } from 'fast-jwt'
import Fastify from 'fastify'
import postgres from 'postgres'
import { REDACT } from '../src/log.js'
import { API_HEADERS } from '../src/plugins/security-headers.js'

const features = process.env.FLOOR_FEATURES === '1'
// the service's pool size, passed by the bench
const sql = postgres(process.env.DATABASE_URL!, { max: Number(process.env.DATABASE_POOL_SIZE), onnotice: () => {} })
const verify = createVerifier({
  key: process.env.JWT_PUBLIC_KEY!,
  algorithms: ['EdDSA'],
  allowedIss: 'auth-api',
  allowedAud: 'auth-api',
  requiredClaims: ['iss', 'aud', 'sub', 'sid', 'jti', 'iat', 'exp'],
  clockTolerance: 30_000,
  checkTyp: 'at+jwt',
})
const app = Fastify(features ? { logger: { level: 'warn', redact: { paths: REDACT, censor: '[redacted]' } } } : {})
if (features) {
  await app.register(rateLimit, { global: true, max: 1_000_000, timeWindow: 60_000, enableDraftSpec: true })
  await app.register(cors, { origin: (_origin, cb) => cb(null, false), credentials: true })
  app.addHook('onRequest', (_request, reply, done) => {
    reply.headers(API_HEADERS)
    done()
  })
}
app.get('/me', async (request, reply) => {
  const token = (request.headers.authorization ?? '').slice(7)
  let claims: { sub: string, sid: string }
  try {
    claims = verify(token)
  } catch {
    return reply.code(401).send({ code: 'invalid_token' })
  }
  const [row] = await sql`select s.revoked_at, s.absolute_expires_at, u.id, u.email, u.username, u.name, u.created_at
    from sessions s join users u on u.id = s.user_id where s.id = ${claims.sid} and s.user_id = ${claims.sub} limit 1`
  if (!row || row.revoked_at) return reply.code(401).send({ code: 'invalid_token' })
  return { id: row.id, email: row.email, username: row.username, name: row.name, createdAt: row.created_at }
})
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })
console.log('floor ready')
