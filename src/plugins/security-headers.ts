import type { FastifyInstance, onRequestHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import helmet from 'helmet'

/**
 * What a JSON API response needs (OWASP REST Security Cheat Sheet): never stored by a cache (routes that
 * may be cached say so), nothing to frame, sniff or run, HTTPS only. helmet's other headers govern how a
 * browser treats a document (DNS prefetch, downloads, Flash policies, opener, agent clusters, referrers),
 * which an API response never becomes; the HTML pages (docs, demo) get them. Each header is work on every
 * response, and helmet's twelve showed in /me's throughput (README, benchmarks).
 */
export const API_HEADERS: Readonly<Record<string, string>> = {
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none';frame-ancestors 'none'",
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
}

/** An onRequest hook that sets these headers, computed once, on every response of its scope. */
function headersHook (headers: Readonly<Record<string, string>>): onRequestHookHandler {
  return (_request, reply, done) => {
    reply.headers(headers)
    done()
  }
}

/** helmet's headers for HTML pages (the pages set their own Content-Security-Policy). */
export function documentHeaders (): Record<string, string> {
  const headers: Record<string, string> = {}
  const res = {
    setHeader: (name: string, value: unknown) => { headers[name.toLowerCase()] = String(value) },
    removeHeader: (name: string) => { delete headers[name.toLowerCase()] },
  }
  helmet({ contentSecurityPolicy: false })({} as never, res as never, () => {})
  return headers
}

/** For a scope of HTML pages: helmet's document headers on top of the API's. */
export const documentHeadersHook = () => headersHook(documentHeaders())

async function securityHeaders (app: FastifyInstance) {
  app.addHook('onRequest', headersHook(API_HEADERS))
}

export default fp(securityHeaders, { name: 'security-headers' })
