import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { problemResponses } from '../schemas/common.js'

const Jwks = Type.Object({
  keys: Type.Array(Type.Object({
    kty: Type.Literal('OKP'),
    crv: Type.Literal('Ed25519'),
    x: Type.String(),
    kid: Type.String(),
    alg: Type.Literal('EdDSA'),
    use: Type.Literal('sig'),
  })),
}, {
  description: 'JSON Web Key Set (RFC 7517); cacheable for 5 minutes',
  examples: [{ keys: [{ kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo', kid: '3hMomz4urc-2v6mehopKxiB_p12FZPppOozYt4H2HLs', alg: 'EdDSA', use: 'sig' }] }],
})

export default async function wellKnownRoutes (app: FastifyInstance) {
  // Public keys only: the response schema admits no private member.
  app.get('/.well-known/jwks.json', {
    schema: { tags: ['keys'], operationId: 'getJwks', summary: 'Public keys that verify access tokens', response: { 200: Jwks, ...problemResponses() } },
  }, async (_request, reply) => {
    reply.header('cache-control', 'public, max-age=300')
    return { keys: app.publicKeys }
  })

  app.get('/openapi.json', { schema: { hide: true } }, async (_request, reply) => {
    reply.header('cache-control', 'public, max-age=300')
    return app.swagger()
  })
}
