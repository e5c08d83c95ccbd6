import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { problemResponses, User } from '../schemas/common.js'

export default async function meRoutes (fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()

  app.get('/me', {
    onRequest: [app.authenticate],
    schema: {
      tags: ['account'],
      operationId: 'getMe',
      summary: 'The signed-in user',
      security: [{ bearerAuth: [] }],
      response: { 200: User, ...problemResponses(401) },
    },
  }, async (request) => request.principal!.user)
}
