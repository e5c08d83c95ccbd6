import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { Type } from 'typebox'
import { audit } from '../audit.js'
import { source } from './auth.js'
import { ApiError } from '../errors.js'
import { described, problemResponses } from '../schemas/common.js'
import { RecoveryCodes, SecondFactorProof, TotpConfirmation, TotpEnrolment } from '../schemas/mfa.js'

const bearerOnly = [{ bearerAuth: [] }]

/** A signed-in user turning two-factor sign-in on and off, and renewing recovery codes. */
export default async function mfaRoutes (fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const { mfa } = app

  const who = (request: FastifyRequest) => ({ userId: request.principal!.user.id, sessionId: request.principal!.sessionId })

  /** A wrong code is audited (never the code itself). */
  async function auditCodeFailure<T> (request: FastifyRequest, route: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work()
    } catch (err) {
      if (err instanceof ApiError && err.code === 'mfa_code_invalid') audit(request, 'mfa_code_failed', { ...who(request), route })
      throw err
    }
  }

  app.post('/mfa/totp/enroll', {
    onRequest: [app.authenticate],
    schema: {
      tags: ['mfa'],
      operationId: 'enrollTotp',
      summary: 'Start enrolling an authenticator app',
      description: 'A new pending secret (a second call replaces it). Nothing changes for sign-in until POST /mfa/totp/confirm.',
      security: bearerOnly,
      response: { 200: TotpEnrolment, ...problemResponses(400, 401, 'mfa_already_enabled', 413, 415) },
    },
  }, async (request) => {
    const enrolment = await mfa.enroll(request.principal!.user)
    audit(request, 'mfa_totp_enrolment_started', who(request))
    return enrolment
  })

  app.post('/mfa/totp/confirm', {
    onRequest: [app.authenticate],
    schema: {
      tags: ['mfa'],
      operationId: 'confirmTotp',
      summary: 'Turn on two-factor sign-in with a code of the new app',
      description: 'Returns ten recovery codes, shown only now. This session becomes aal2 (its next refresh carries it); every other session of the account is signed out.',
      security: bearerOnly,
      body: TotpConfirmation,
      response: {
        200: described(RecoveryCodes, 'Two-factor sign-in is on; keep these recovery codes safe'),
        ...problemResponses(400, 401, 'mfa_code_invalid', 'mfa_not_enrolling', 413, 415),
      },
    },
  }, async (request) => {
    const { user, sessionId, aal, amr } = request.principal!
    const { recoveryCodes, otherSessionsEnded } = await auditCodeFailure(request, 'confirm', () => mfa.confirm({ userId: user.id, email: user.email, sessionId, aal, amr }, request.body.code, source(request)))
    audit(request, 'mfa_enabled', { ...who(request), otherSessionsEnded })
    return { recoveryCodes }
  })

  app.post('/mfa/recovery-codes', {
    onRequest: [app.authenticate],
    schema: {
      tags: ['mfa'],
      operationId: 'regenerateRecoveryCodes',
      summary: 'Replace the recovery codes',
      description: 'Needs a current code or an unused recovery code. A wrong one counts toward the per-account sign-in limit.',
      security: bearerOnly,
      body: SecondFactorProof,
      response: {
        200: described(RecoveryCodes, 'Ten new recovery codes; the old ones no longer work'),
        ...problemResponses(400, 401, 'mfa_code_invalid', 'mfa_not_enabled', 413, 415),
      },
    },
  }, async (request) => {
    const { recoveryCodes, method } = await auditCodeFailure(request, 'recovery-codes', () => mfa.regenerateRecoveryCodes(request.principal!.user, request.body.code, source(request)))
    if (method === 'rec') audit(request, 'mfa_recovery_code_used', { ...who(request), route: 'recovery-codes' })
    audit(request, 'mfa_recovery_codes_regenerated', who(request))
    return { recoveryCodes }
  })

  app.delete('/mfa/totp', {
    onRequest: [app.authenticate],
    schema: {
      tags: ['mfa'],
      operationId: 'disableTotp',
      summary: 'Turn off two-factor sign-in',
      description: 'Needs a current code or an unused recovery code. Removes the app and every recovery code: sign-in asks for the password only.',
      security: bearerOnly,
      body: SecondFactorProof,
      response: {
        204: Type.Null({ description: 'Two-factor sign-in is off' }),
        ...problemResponses(400, 401, 'mfa_code_invalid', 'mfa_not_enabled', 413, 415),
      },
    },
  }, async (request, reply) => {
    const { method } = await auditCodeFailure(request, 'disable', () => mfa.disable(request.principal!.user, request.body.code, source(request)))
    if (method === 'rec') audit(request, 'mfa_recovery_code_used', { ...who(request), route: 'disable' })
    audit(request, 'mfa_disabled', who(request))
    return reply.code(204).send(null)
  })
}
