import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { documentHeadersHook } from './security-headers.js'

/** The committed document names the local development server; a served one names the server serving it. */
export const servedDocument = (document: Record<string, unknown>) => ({ ...document, servers: [{ url: '/', description: 'This server' }] })

/** The OpenAPI 3.1 document is generated from the route schemas: one source of truth. */
async function docsPlugin (app: FastifyInstance) {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Auth API',
        version: '1.0.0',
        description: 'Sign up, sign in and stay signed in: short-lived EdDSA access tokens and rotating refresh tokens. ' +
          'Every error is RFC 9457 application/problem+json with a stable `code`.',
      },
      servers: [{ url: 'http://127.0.0.1:3000', description: 'Local development' }],
      tags: [
        { name: 'auth', description: 'Register, sign in, refresh and sign out' },
        { name: 'account', description: 'The signed-in user: profile, password, sessions, deletion' },
        { name: 'password', description: 'Forgotten passwords: a reset link by email' },
        { name: 'email', description: 'Email address verification' },
        { name: 'admin', description: 'Operators (role admin): users and their sessions' },
        { name: 'keys', description: 'Public keys to verify access tokens' },
        { name: 'ops', description: 'Health and readiness' },
      ],
      components: {
        securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      },
    },
  })
  // Interactive docs; DOCS_ENABLED=false turns them off (the document itself stays at /openapi.json).
  if (app.config.docsEnabled) {
    await app.register(async pages => {
      pages.addHook('onRequest', documentHeadersHook())
      await pages.register(swaggerUi, {
        routePrefix: '/docs',
        staticCSP: true,
        uiConfig: { deepLinking: true, persistAuthorization: false },
        // "Try it out" calls the server the page came from, whatever its host and port
        transformSpecification: document => servedDocument(document),
      })
    })
  }
}

export default fp(docsPlugin, { name: 'docs', dependencies: ['config'] })
