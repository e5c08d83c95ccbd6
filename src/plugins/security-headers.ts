import type { FastifyInstance, onRequestHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import helmet, { type HelmetOptions } from 'helmet'

/**
 * What a JSON API response needs (OWASP REST Security Cheat Sheet): never stored by a cache (routes that
 * may be cached say so), nothing to frame, sniff or run, HTTPS only. helmet's other headers govern how a
 * browser treats a document (DNS prefetch, downloads, Flash policies, opener, agent clusters, referrers),
 * which an API response never becomes; the HTML pages (docs, demo) get them. Each header is work on every
 * response: helmet's twelve cost /me ~10 % of its throughput.
 */
export const API_HEADERS: Readonly<Record<string, string>> = {
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none';frame-ancestors 'none'",
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
}

/** helmet's headers for HTML pages, computed once (the pages set their own Content-Security-Policy). */
export function documentHeaders (options: HelmetOptions = { contentSecurityPolicy: false }): Record<string, string> {
  const headers: Record<string, string> = {}
  const res = {
    setHeader: (name: string, value: unknown) => { headers[name.toLowerCase()] = String(value) },
    removeHeader: (name: string) => { delete headers[name.toLowerCase()] },
  }
  helmet(options)({} as never, res as never, () => {})
  return headers
}

/** An onRequest hook for a scope of HTML pages: helmet's document headers on top of the API's. */
export function documentHeadersHook (): onRequestHookHandler {
  const headers = documentHeaders()
  return (_request, reply, done) => {
    reply.headers(headers)
    done()
  }
}

async function securityHeaders (app: FastifyInstance) {
  app.addHook('onRequest', (_request, reply, done) => {
    reply.headers(API_HEADERS)
    done()
  })
}

export default fp(securityHeaders, { name: 'security-headers' })
