import { readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import { documentHeadersHook } from '../plugins/security-headers.js'

const dir = new URL('../../public/demo/', import.meta.url)

/** A page that uses cookie mode as a browser app would, and the pages email links open; served outside production only. */
export default async function demoRoutes (app: FastifyInstance) {
  app.addHook('onRequest', documentHeadersHook())
  const html = readFileSync(new URL('index.html', dir))
  const js = readFileSync(new URL('app.js', dir))
  const csp = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
  // the enrolment QR code is shown as a data: image (an SVG as an image runs no script)
  const demoCsp = `${csp}; img-src 'self' data:`
  app.get('/demo', { schema: { hide: true } }, async (_request, reply) =>
    reply.type('text/html; charset=utf-8').header('content-security-policy', demoCsp).send(html))
  app.get('/demo/app.js', { schema: { hide: true } }, async (_request, reply) =>
    reply.type('text/javascript; charset=utf-8').send(js))

  // where the links in emails land while APP_URL is this server (development)
  const links = readFileSync(new URL('links.html', dir))
  const linksJs = readFileSync(new URL('links.js', dir))
  for (const path of ['/reset-password', '/verify-email']) {
    app.get(path, { schema: { hide: true } }, async (_request, reply) =>
      reply.type('text/html; charset=utf-8').header('content-security-policy', csp).send(links))
  }
  app.get('/demo/links.js', { schema: { hide: true } }, async (_request, reply) =>
    reply.type('text/javascript; charset=utf-8').send(linksJs))
}
