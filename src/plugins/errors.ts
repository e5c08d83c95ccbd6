import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { ApiError, toProblem, type FieldError, type ProblemCode } from '../errors.js'

declare module 'fastify' {
  interface FastifyRequest {
    /** The problem code this request was answered with, for metrics and logs. */
    problemCode: ProblemCode | null
  }
}

type ValidationIssue = NonNullable<FastifyError['validation']>[number]

// Driver and network failures that mean "the database (or Redis) is not there right now".
const UNAVAILABLE = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'EAI_AGAIN',
  'CONNECT_TIMEOUT', 'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED',
  '57P01', '57P02', '57P03', '53300', '08000', '08001', '08003', '08004', '08006', '57014',
])

export function isBackendUnavailable (err: unknown): boolean {
  for (let e = err as { code?: unknown, cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string' && UNAVAILABLE.has(e.code)) return true
    if (e instanceof Error && (e.name === 'MaxRetriesPerRequestError' || /PGlite is closed|Stream isn't writeable|Connection is closed|enableOfflineQueue/i.test(e.message))) return true
  }
  return false
}

function fieldErrors (issues: ValidationIssue[], context: string): FieldError[] {
  // A union's own "must match a schema in anyOf" and its "must be null" branch only add noise.
  const useful = issues.filter(i => i.keyword !== 'anyOf' && !(i.keyword === 'type' && i.params.type === 'null'))
  return (useful.length ? useful : issues).map(i => {
    const base = i.instancePath
    if (i.keyword === 'required') return { path: `${base}/${String(i.params.missingProperty)}`, message: 'is required' }
    if (i.keyword === 'additionalProperties') return { path: `${base}/${String(i.params.additionalProperty)}`, message: 'is not an allowed property' }
    return { path: base || '/', message: i.message ?? 'is not valid' }
  }).map(e => ({ ...e, path: context === 'body' ? e.path : `/${context}${e.path === '/' ? '' : e.path}` }))
}

// Fastify's own errors, by their code: which problem each is, in words a client can act on.
const BY_CODE: Record<string, [ProblemCode, string]> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: ['unsupported_media_type', 'Send the body as JSON with Content-Type: application/json'],
  FST_ERR_CTP_INVALID_TYPE: ['unsupported_media_type', 'Send the body as JSON with Content-Type: application/json'],
  FST_ERR_CTP_BODY_TOO_LARGE: ['payload_too_large', 'The request body must be at most 16384 bytes'],
  FST_ERR_CTP_EMPTY_JSON_BODY: ['validation_failed', 'The body is empty; send a JSON object'],
  FST_ERR_CTP_INVALID_JSON_BODY: ['validation_failed', 'The request body is not valid JSON'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: ['validation_failed', 'Content-Length does not match the body'],
}

function classify (err: FastifyError): ApiError {
  if (err instanceof ApiError) return err
  if (err.validation) {
    const errors = fieldErrors(err.validation, err.validationContext ?? 'body')
    const where = err.validationContext && err.validationContext !== 'body' ? `${err.validationContext} ` : ''
    const detail = errors.map(e => `${where}${e.path} ${e.message}`).join('; ')
    return new ApiError('validation_failed', detail, { errors })
  }
  const known = err.code ? BY_CODE[err.code] : undefined
  if (known) return new ApiError(known[0], known[1], { cause: err })
  if (err instanceof SyntaxError || err.code === 'FST_ERR_BAD_URL' || /prototype|constructor/i.test(err.code ?? '')) {
    return new ApiError('validation_failed', 'The request is malformed', { cause: err })
  }
  if (isBackendUnavailable(err)) return new ApiError('service_unavailable', 'A backing service is unavailable; try again shortly', { cause: err, headers: { 'retry-after': 5 } })
  const status = err.statusCode ?? 500
  if (status === 404) return new ApiError('not_found', undefined, { cause: err })
  if (status === 413) return new ApiError('payload_too_large', undefined, { cause: err })
  if (status === 415) return new ApiError('unsupported_media_type', undefined, { cause: err })
  if (status === 429) return new ApiError('too_many_requests', undefined, { cause: err })
  if (status >= 400 && status < 500) return new ApiError('validation_failed', 'The request is not valid', { cause: err })
  return new ApiError('internal_error', 'Something went wrong on our side; the error has been logged', { cause: err })
}

export function sendProblem (reply: FastifyReply, error: ApiError) {
  reply.request.problemCode = error.code
  reply.code(error.statusCode).headers(error.headers).type('application/problem+json')
  return reply.send(toProblem(error.code, error.detail, error.errors, error.extensions))
}

/**
 * Fastify's `frameworkErrors`: what the router refuses before any route or hook runs (a URL that is not
 * valid percent-encoding, a path parameter over maxParamLength) gets the same problem shape. A parameter
 * too long to be any id names nothing: 404, as an unknown id would.
 */
export function frameworkErrors (err: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  const problem = err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? new ApiError('not_found', 'No such resource') : classify(err)
  request.log.info({ code: problem.code, status: problem.statusCode }, 'request refused')
  reply.header('cache-control', 'no-store')
  return sendProblem(reply, problem)
}

async function errorsPlugin (app: FastifyInstance) {
  app.decorateRequest('problemCode', null)
  app.setErrorHandler((err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const problem = classify(err)
    if (problem.statusCode >= 500) {
      // the full error goes to the log; the client gets only the code
      request.log.error({ err }, `request failed: ${problem.code}`)
    } else {
      request.log.info({ code: problem.code, status: problem.statusCode }, 'request refused')
    }
    return sendProblem(reply, problem)
  })

  app.setNotFoundHandler({ preHandler: app.rateLimit() }, (request, reply) =>
    sendProblem(reply, new ApiError('not_found', `No route for ${request.method} ${request.url.split('?')[0]}`)))
}

export default fp(errorsPlugin, { name: 'errors', dependencies: ['rate-limit'] })
