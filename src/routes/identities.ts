import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { audit, meta } from '../audit.js'
import { source } from './auth.js'
import { ApiError } from '../errors.js'
import { problemResponses } from '../schemas/common.js'
import {
  AuthorizeQuery, CallbackQuery, IdentityList, IdentityParams, LinkBody, LinkStarted, ProviderList, ProviderParams,
} from '../schemas/identities.js'

const bearerOnly = [{ bearerAuth: [] }]

const redirect = (description: string) => Type.Null({ description, headers: { Location: { type: 'string', description: 'Where the browser goes next' } } })

/** A redirect that carries a state or a one-time code: never cached, never sent on as a Referer. */
function send (reply: FastifyReply, url: URL) {
  return reply.header('cache-control', 'no-store').header('referrer-policy', 'no-referrer').redirect(url.href, 302)
}

/** The query string exactly as the provider sent it: openid-client reads the answer (code, state, iss) from it. */
const rawQuery = (request: FastifyRequest) => {
  const at = request.url.indexOf('?')
  return at === -1 ? '' : request.url.slice(at + 1)
}

/**
 * Signing in through identity providers (OpenID Connect), and a signed-in user's linked identities.
 * POST /oauth/token, which opens the session, is with the other sign-ins in routes/auth.ts.
 */
export default async function identityRoutes (fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const { federation, identityProviders } = app

  app.get('/oauth/providers', {
    schema: {
      tags: ['identity providers'],
      operationId: 'listIdentityProviders',
      summary: 'The identity providers one can sign in with',
      description: 'Listed whether or not a provider can be reached right now.',
      response: { 200: ProviderList, ...problemResponses() },
    },
  }, async () => ({ providers: identityProviders.list() }))

  app.get('/oauth/:id/authorize', {
    schema: {
      tags: ['identity providers'],
      operationId: 'authorizeWithProvider',
      summary: 'Start signing in with an identity provider',
      description: 'Open in the browser (a web app navigates, a mobile app opens a system browser tab). Redirects to the provider; the provider returns to /oauth/{id}/callback, which redirects to redirect_uri with code=<one-time code>&state=<your state>, or error=<problem code>&state=<your state>. Exchange the code at POST /oauth/token with the verifier of code_challenge.',
      params: ProviderParams,
      querystring: AuthorizeQuery,
      response: { 302: redirect('To the provider\'s sign-in page'), ...problemResponses(400, 'redirect_uri_invalid', 'not_found', 'provider_unavailable') },
    },
  }, async (request, reply) => {
    const { redirect_uri: redirectUri, code_challenge: codeChallenge, state } = request.query
    return send(reply, await federation.authorize(request.params.id, { redirectUri, codeChallenge, clientState: state }))
  })

  app.get('/oauth/:id/callback', {
    schema: {
      tags: ['identity providers'],
      operationId: 'identityProviderCallback',
      summary: 'Where the identity provider returns the browser',
      description: 'Registered at the provider as PUBLIC_URL/oauth/{id}/callback; not called by apps. A state that is unknown, used, expired or of another provider is a 400 problem; every other outcome is a redirect to the redirect URI of the flow: code=…&state=…, linked=<provider id>&state=… for a link, or error=<problem code>&state=… (email_taken, identity_taken, provider_denied, provider_error, id_token_invalid, provider_email_missing, provider_unavailable).',
      params: ProviderParams,
      querystring: CallbackQuery,
      response: { 302: redirect('To the client\'s redirect URI'), ...problemResponses('oauth_state_invalid', 'not_found') },
    },
  }, async (request, reply) => {
    let outcome
    try {
      outcome = await federation.callback(request.params.id, request.query, rawQuery(request), meta(request))
    } catch (err) {
      // a replayed, expired or misdirected state is a refused sign-in too, though nothing says where to redirect
      if (err instanceof ApiError && err.code === 'oauth_state_invalid') audit(request, 'identity_refused', { provider: request.params.id, code: err.code })
      throw err
    }
    if ('refused' in outcome) {
      audit(request, 'identity_refused', { provider: outcome.provider, userId: outcome.userId, code: outcome.refused.code })
      // ours, not the provider's: logged whole (errors are serialized without their query parameters)
      if (outcome.refused.code === 'internal_error') request.log.error({ err: outcome.refused.cause }, 'identity-provider callback failed')
    } else {
      audit(request, outcome.event, { provider: outcome.provider, userId: outcome.userId, ...(outcome.linkedBy ? { linkedBy: outcome.linkedBy } : {}) })
    }
    return send(reply, outcome.redirect)
  })

  app.post('/me/identities/:id', {
    onRequest: [app.authenticate],
    schema: {
      tags: ['identity providers'],
      operationId: 'linkIdentity',
      summary: 'Start linking an identity provider to this account',
      description: 'Send the browser to authorizeUrl; after the provider, the callback links the identity to this account and redirects to redirectUri with linked=<provider id> (or error=identity_taken when it is linked to another account).',
      security: bearerOnly,
      params: ProviderParams,
      body: LinkBody,
      response: { 200: LinkStarted, ...problemResponses(400, 'redirect_uri_invalid', 401, 'not_found', 413, 415, 'provider_unavailable') },
    },
  }, async (request) => {
    const { redirectUri, codeChallenge, state } = request.body
    const url = await federation.authorize(request.params.id, { redirectUri, codeChallenge, clientState: state, linkUserId: request.principal!.user.id })
    return { authorizeUrl: url.href }
  })

  app.get('/me/identities', {
    onRequest: [app.authenticate],
    schema: {
      tags: ['identity providers'],
      operationId: 'listIdentities',
      summary: 'The identity providers linked to this account',
      security: bearerOnly,
      response: { 200: IdentityList, ...problemResponses(401) },
    },
  }, async (request) => ({ identities: await federation.list(request.principal!.user.id) }))

  app.delete('/me/identities/:identityId', {
    onRequest: [app.authenticate],
    schema: {
      tags: ['identity providers'],
      operationId: 'unlinkIdentity',
      summary: 'Unlink an identity provider',
      description: 'Not the last way to sign in: an account without a password, a passkey or another identity answers 409 last_sign_in_method (set a password with POST /me/password first).',
      security: bearerOnly,
      params: IdentityParams,
      response: { 204: Type.Null({ description: 'Unlinked' }), ...problemResponses(401, 'not_found', 'last_sign_in_method') },
    },
  }, async (request, reply) => {
    const { user, sessionId } = request.principal!
    try {
      await federation.unlink(user.id, request.params.identityId, source(request))
    } catch (err) {
      if (err instanceof ApiError) audit(request, 'identity_unlink_refused', { userId: user.id, sessionId, code: err.code })
      throw err
    }
    audit(request, 'identity_unlinked', { userId: user.id, sessionId, identityId: request.params.identityId.toLowerCase() })
    return reply.code(204).send(null)
  })
}
