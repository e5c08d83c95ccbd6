import { readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'

const dir = new URL('../../public/demo/', import.meta.url)

/** A page that uses cookie mode as a browser app would; served outside production only. */
export default async function demoRoutes (app: FastifyInstance) {
  const html = readFileSync(new URL('index.html', dir))
  const js = readFileSync(new URL('app.js', dir))
  const csp = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
  app.get('/demo', { schema: { hide: true } }, async (_request, reply) =>
    reply.type('text/html; charset=utf-8').header('content-security-policy', csp).send(html))
  app.get('/demo/app.js', { schema: { hide: true } }, async (_request, reply) =>
    reply.type('text/javascript; charset=utf-8').send(js))
}
