import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { RegistrationResponseJSON } from '@simplewebauthn/server'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { audit } from '../audit.js'
import { source } from './auth.js'
import { ApiError } from '../errors.js'
import { described, problemResponses } from '../schemas/common.js'
import { CreationOptions, PasskeyList, PasskeyParams, PasskeyRegistration, PasskeyRename, PasskeyView } from '../schemas/passkeys.js'

const bearerOnly = [{ bearerAuth: [] }]

/** A signed-in user adding, naming and removing passkeys. */
export default async function passkeyRoutes (fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const { passkeys } = app
  const who = (request: FastifyRequest) => ({ userId: request.principal!.user.id, sessionId: request.principal!.sessionId })

  // An account with a second factor manages its passkeys only from a session that proved two factors.
  // Sessions opened by the sign-in rules are never below aal2 for such an account; this is the guard if one ever is.
  async function stepUp (request: FastifyRequest) {
    const { mfa, aal } = request.principal!
    if (mfa.totp && aal === 'aal1') throw new ApiError('mfa_step_up_required', 'Sign in with your second factor to manage passkeys')
  }
  const guards = [app.authenticate, stepUp]

  app.post('/passkeys/register/options', {
    onRequest: guards,
    schema: {
      tags: ['passkeys'],
      operationId: 'passkeyRegistrationOptions',
      summary: 'Start adding a passkey',
      description: 'Options for navigator.credentials.create() (startRegistration of @simplewebauthn/browser): a new challenge, single use, 5 minutes, for this user only.',
      security: bearerOnly,
      response: { 200: CreationOptions, ...problemResponses(400, 401, 'mfa_step_up_required', 413, 415) },
    },
  }, async (request) => passkeys.registrationOptions(request.principal!.user))

  app.post('/passkeys/register', {
    onRequest: guards,
    schema: {
      tags: ['passkeys'],
      operationId: 'registerPasskey',
      summary: 'Finish adding a passkey',
      description: 'The browser\'s answer to the options. 400 passkey_invalid for a wrong, used or expired challenge, another origin or RP ID, a bad signature or a malformed response.',
      security: bearerOnly,
      body: PasskeyRegistration,
      response: { 201: described(PasskeyView, 'Added'), ...problemResponses('passkey_invalid', 401, 'mfa_step_up_required', 'passkey_exists', 413, 415) },
    },
  }, async (request, reply) => {
    try {
      const passkey = await passkeys.register(request.principal!.user, request.body.response as unknown as RegistrationResponseJSON, request.body.name, source(request))
      audit(request, 'passkey_registered', { ...who(request), passkeyId: passkey.id, deviceType: passkey.deviceType })
      return reply.code(201).send(passkey)
    } catch (err) {
      if (err instanceof ApiError) audit(request, 'passkey_registration_failed', { ...who(request), code: err.code })
      throw err
    }
  })

  app.get('/passkeys', {
    onRequest: guards,
    schema: {
      tags: ['passkeys'],
      operationId: 'listPasskeys',
      summary: 'The signed-in user\'s passkeys',
      security: bearerOnly,
      response: { 200: PasskeyList, ...problemResponses(401, 'mfa_step_up_required') },
    },
  }, async (request) => ({ passkeys: await passkeys.list(request.principal!.user.id) }))

  app.patch('/passkeys/:id', {
    onRequest: guards,
    schema: {
      tags: ['passkeys'],
      operationId: 'renamePasskey',
      summary: 'Rename a passkey',
      security: bearerOnly,
      params: PasskeyParams,
      body: PasskeyRename,
      response: { 200: described(PasskeyView, 'Renamed'), ...problemResponses(400, 401, 'mfa_step_up_required', 'not_found', 413, 415) },
    },
  }, async (request) => {
    const passkey = await passkeys.rename(request.principal!.user.id, request.params.id, request.body.name)
    audit(request, 'passkey_renamed', { ...who(request), passkeyId: passkey.id })
    return passkey
  })

  app.delete('/passkeys/:id', {
    onRequest: guards,
    schema: {
      tags: ['passkeys'],
      operationId: 'deletePasskey',
      summary: 'Remove a passkey',
      description: 'It signs in no more. The last one may go too when a password or an identity provider remains (an account with neither answers 409 last_sign_in_method).',
      security: bearerOnly,
      params: PasskeyParams,
      response: { 204: Type.Null({ description: 'Removed' }), ...problemResponses(400, 401, 'mfa_step_up_required', 'not_found', 'last_sign_in_method', 413, 415) },
    },
  }, async (request, reply) => {
    await passkeys.remove(request.principal!.user.id, request.params.id, source(request))
    audit(request, 'passkey_deleted', { ...who(request), passkeyId: request.params.id.toLowerCase() })
    return reply.code(204).send(null)
  })
}
