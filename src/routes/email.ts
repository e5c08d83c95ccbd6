import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { audit, meta } from '../audit.js'
import { ApiError } from '../errors.js'
import { described, problemResponses } from '../schemas/common.js'
import { Accepted, EMAIL_CHANGE_ANSWER, EmailChangeBody, EmailChangeConfirmBody, FORGOT_ANSWER, ForgotBody, RESEND_ANSWER, ResetBody, VerifyBody } from '../schemas/email.js'
import { bearerToken } from '../plugins/auth.js'
import { normalizeIdentity, source } from './auth.js'

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

  app.post('/me/email', {
    onRequest: [app.authenticate],
    schema: {
      tags: ['email'],
      operationId: 'changeEmail',
      summary: 'Change the email address (a link goes to the new one)',
      description: 'Always 202 once the password is right: the new address gets a link to APP_URL/confirm-email?token=… (single use, EMAIL_CHANGE_TOKEN_TTL; a newer request voids it), the current one a notice naming the new. An address another account has gets no link, and the answer is the same. A wrong current password counts toward the per-account sign-in limit. An account without a password leaves currentPassword out and needs a sign-in within the last 10 minutes.',
      security: [{ bearerAuth: [] }],
      body: EmailChangeBody,
      response: {
        202: described(Accepted, 'Accepted: follow the link sent to the new address', [EMAIL_CHANGE_ANSWER]),
        ...problemResponses(400, 401, 'current_password_incorrect', 'reauthentication_required', 413, 415),
      },
    },
  }, async (request, reply) => {
    const { user, sessionId, signedInAt } = request.principal!
    try {
      await app.accounts.requestEmailChange({ userId: user.id, signedInAt }, request.body, source(request))
    } catch (err) {
      if (err instanceof ApiError) audit(request, 'email_change_failed', { userId: user.id, sessionId, code: err.code })
      throw err
    }
    audit(request, 'email_change_requested', { userId: user.id, sessionId })
    return reply.code(202).send(EMAIL_CHANGE_ANSWER)
  })

  app.post('/email/change/confirm', {
    schema: {
      tags: ['email'],
      operationId: 'confirmEmailChange',
      summary: 'Confirm a change of email address with the token from the email',
      description: 'No bearer token needed (the link may be opened on another device). The new address becomes the account\'s, verified; every session ends except the confirming one when the request carries that user\'s bearer token; the old address gets a last notice.',
      security: [{ bearerAuth: [] }, {}],
      body: EmailChangeConfirmBody,
      response: {
        204: Type.Null({ description: 'The email address is changed' }),
        ...problemResponses('email_change_token_invalid', 'email_taken', 413, 415),
      },
    },
  }, async (request, reply) => {
    // a bearer token is optional here: a bad one is as good as none
    let caller: { userId: string, sessionId: string } | null = null
    const token = bearerToken(request)
    if (token) {
      try {
        const claims = app.verifyAccessToken(token)
        caller = { userId: claims.sub, sessionId: claims.sid }
      } catch {}
    }
    const { userId, sessionsEnded } = await app.accounts.confirmEmailChange(request.body.token, caller, meta(request))
    audit(request, 'email_changed', { userId, sessionsEnded })
    return reply.code(204).send(null)
  })
}
