import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'

const Jwks = Type.Object({
  keys: Type.Array(Type.Object({
    kty: Type.Literal('OKP'),
    crv: Type.Literal('Ed25519'),
    x: Type.String(),
    kid: Type.String(),
    alg: Type.Literal('EdDSA'),
    use: Type.Literal('sig'),
  })),
})

export default async function wellKnownRoutes (app: FastifyInstance) {
  // Public keys only: the response schema admits no private member.
  app.get('/.well-known/jwks.json', {
    schema: { tags: ['keys'], operationId: 'getJwks', summary: 'Public keys that verify access tokens', response: { 200: Jwks } },
  }, async (_request, reply) => {
    reply.header('cache-control', 'public, max-age=300')
    return { keys: [app.signingKey.jwk] }
  })

  app.get('/openapi.json', { schema: { hide: true } }, async (_request, reply) => {
    reply.header('cache-control', 'public, max-age=300')
    return app.swagger()
  })
}
