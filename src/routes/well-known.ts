import type { FastifyInstance } from 'fastify'
import { servedDocument } from '../plugins/docs.js'
import { problemResponses } from '../schemas/common.js'
import { Jwks } from '../schemas/keys.js'

export default async function wellKnownRoutes (app: FastifyInstance) {
  // Public keys only: the response schema admits no private member.
  app.get('/.well-known/jwks.json', {
    schema: { tags: ['keys'], operationId: 'getJwks', summary: 'Public keys that verify access tokens', response: { 200: Jwks, ...problemResponses() } },
  }, async (_request, reply) => {
    reply.header('cache-control', 'public, max-age=300')
    return { keys: app.accessTokens.publicKeys }
  })

  app.get('/openapi.json', { schema: { hide: true } }, async (_request, reply) => {
    reply.header('cache-control', 'public, max-age=300')
    return servedDocument(app.swagger() as unknown as Record<string, unknown>)
  })
}
