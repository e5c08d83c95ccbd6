import { readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, sep } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { documentHeadersHook } from '../plugins/security-headers.js'

const dir = new URL('../../public/demo/', import.meta.url)

/**
 * The ES module build of @simplewebauthn/browser (index.js and the sibling files it imports), read once:
 * only these files are ever served, so no path, encoded or not, reaches anything else.
 */
function browserModules (): Map<string, Buffer> {
  // resolved as CommonJS (its script/ build), then up to the package's root: import.meta.resolve would
  // deadlock under ESM loader hooks (tap's mockImport), and the package exports no package.json
  let root: string
  try {
    root = dirname(createRequire(import.meta.url).resolve('@simplewebauthn/browser'))
  } catch (err) {
    throw new Error('the demo page needs @simplewebauthn/browser (a dependency): run npm ci', { cause: err })
  }
  const isRoot = (path: string) => {
    try {
      return JSON.parse(readFileSync(join(path, 'package.json'), 'utf8')).name === '@simplewebauthn/browser'
    } catch {
      return false
    }
  }
  while (!isRoot(root) && dirname(root) !== root) root = dirname(root)
  const { exports } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { exports: { '.': { import: string } } }
  const esm = dirname(join(root, exports['.'].import))
  const files = new Map<string, Buffer>()
  for (const file of readdirSync(esm, { recursive: true, encoding: 'utf8' })) {
    if (file.endsWith('.js')) files.set(file.split(sep).join('/'), readFileSync(join(esm, file)))
  }
  return files
}

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

  // passkeys: the browser library as the page imports it, same origin (script-src 'self'), no build step
  const modules = browserModules()
  app.get<{ Params: { '*': string } }>('/demo/vendor/simplewebauthn/*', { schema: { hide: true } }, async (request, reply) => {
    const file = modules.get(request.params['*'])
    if (!file) return reply.callNotFound()
    return reply.type('text/javascript; charset=utf-8').send(file)
  })

  // where the links in emails land while APP_URL is this server (development)
  const links = readFileSync(new URL('links.html', dir))
  const linksJs = readFileSync(new URL('links.js', dir))
  for (const path of ['/reset-password', '/verify-email', '/confirm-email']) {
    app.get(path, { schema: { hide: true } }, async (_request, reply) =>
      reply.type('text/html; charset=utf-8').header('content-security-policy', csp).send(links))
  }
  app.get('/demo/links.js', { schema: { hide: true } }, async (_request, reply) =>
    reply.type('text/javascript; charset=utf-8').send(linksJs))
}
