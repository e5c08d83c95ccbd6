import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { audit, meta } from '../audit.js'
import { described, problemResponses } from '../schemas/common.js'
import { Accepted, FORGOT_ANSWER, ForgotBody, RESEND_ANSWER, ResetBody, VerifyBody } from '../schemas/email.js'
import { normalizeIdentity } from './auth.js'

/** Password reset and email verification: the links in the emails land here. */
export default async function emailRoutes (fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const { rateLimit } = app.config
  const { passwordReset, emailVerification } = app

  app.post('/password/forgot', {
    config: { rateLimit: { max: rateLimit.forgotIp, timeWindow: 3_600_000 } },
    preValidation: normalizeIdentity,
    schema: {
      tags: ['password'],
      operationId: 'forgotPassword',
      summary: 'Email a password reset link',
      description: 'Answers 202 with the same body, in the same time, whether or not an account has the address. Limited per address (RATE_LIMIT_FORGOT an hour) and per IP (RATE_LIMIT_FORGOT_IP an hour).',
      body: ForgotBody,
      response: { 202: described(Accepted, 'Accepted, whether or not an account has this address', [FORGOT_ANSWER]), ...problemResponses(400, 413, 415) },
    },
  }, async (request, reply) => {
    await passwordReset.request(request.body.email)
    // no user id: whether there is one is not known here, on purpose
    audit(request, 'password_reset_requested')
    return reply.code(202).send(FORGOT_ANSWER)
  })

  app.post('/password/reset', {
    schema: {
      tags: ['password'],
      operationId: 'resetPassword',
      summary: 'Set a new password with the token from the email',
      description: 'Every session of the account ends. A refused password leaves the token usable.',
      body: ResetBody,
      response: {
        204: Type.Null({ description: 'The password is changed; every session has ended' }),
        ...problemResponses('reset_token_invalid', 413, 415),
      },
    },
  }, async (request, reply) => {
    const userId = await passwordReset.reset(request.body.token, request.body.newPassword, meta(request))
    audit(request, 'password_reset', { userId })
    return reply.code(204).send(null)
  })

  app.post('/email/verify', {
    schema: {
      tags: ['email'],
      operationId: 'verifyEmail',
      summary: 'Verify the email address with the token from the email',
      body: VerifyBody,
      response: {
        204: Type.Null({ description: 'Verified: /me shows emailVerified, and access tokens from the next refresh carry email_verified' }),
        ...problemResponses('verification_token_invalid', 413, 415),
      },
    },
  }, async (request, reply) => {
    const userId = await emailVerification.verify(request.body.token, meta(request))
    audit(request, 'email_verified', { userId })
    return reply.code(204).send(null)
  })

  app.post('/email/verify/resend', {
    onRequest: [app.authenticate],
    schema: {
      tags: ['email'],
      operationId: 'resendVerification',
      summary: 'Send a new verification link',
      description: 'Always 202. Sends nothing when the address is already verified; older links stop working.',
      security: [{ bearerAuth: [] }],
      response: { 202: described(Accepted, 'Accepted', [RESEND_ANSWER]), ...problemResponses(401, 415) },
    },
  }, async (request, reply) => {
    const { user, sessionId } = request.principal!
    const queued = await emailVerification.resend(user.id)
    audit(request, 'verification_resent', { userId: user.id, sessionId, queued })
    return reply.code(202).send(RESEND_ANSWER)
  })
}
