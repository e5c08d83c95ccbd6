// The /refresh floor: the rotation transaction alone (lock the row, spend it, insert the successor),
// issued directly with postgres.js behind a bare Fastify route.
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import Fastify from 'fastify'
import postgres from 'postgres'

// the service's pool size, passed by the bench
const sql = postgres(process.env.DATABASE_URL!, { max: Number(process.env.DATABASE_POOL_SIZE), onnotice: () => {} })
const hash = (t: string) => createHash('sha256').update(t).digest('base64url')
const app = Fastify()
app.post('/refresh', async (request, reply) => {
  const { refreshToken } = request.body as { refreshToken: string }
  const next = randomBytes(32).toString('base64url')
  const ok = await sql.begin(async tx => {
    const [row] = await tx`select id, session_id from refresh_tokens where token_hash = ${hash(refreshToken)} and spent_at is null for update`
    if (!row) return false
    await tx`update refresh_tokens set spent_at = now() where id = ${row.id}`
    await tx`insert into refresh_tokens (id, session_id, token_hash, parent_id, created_at, expires_at)
      values (${randomUUID()}, ${row.session_id}, ${hash(next)}, ${row.id}, now(), now() + interval '12 hours')`
    return true
  })
  if (!ok) return reply.code(401).send({ code: 'invalid_token' })
  return { refreshToken: next }
})
await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' })
console.log('floor ready')
