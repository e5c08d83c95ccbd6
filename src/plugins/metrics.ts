import { timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { ApiError } from '../errors.js'

/**
 * Prometheus metrics at /metrics (off unless METRICS_ENABLED; behind METRICS_TOKEN when set):
 * request latency per route, and sign-in and refresh outcomes by problem code.
 */
async function metricsPlugin (app: FastifyInstance) {
  const { enabled, token } = app.config.metrics
  if (!enabled) return
  // loaded only when enabled (prom-client is not small); a CommonJS module whose plugin is its `default`
  const metricsModule = await import('fastify-metrics')
  const fastifyMetrics = (metricsModule.default as unknown as { default: FastifyPluginAsync<Record<string, unknown>> }).default
  const expected = token ? Buffer.from(`Bearer ${token}`) : undefined
  const guard = async (request: FastifyRequest) => {
    if (!expected) return
    const given = Buffer.from(request.headers.authorization ?? '')
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new ApiError('invalid_token', 'Metrics need Authorization: Bearer <METRICS_TOKEN>', { headers: { 'www-authenticate': 'Bearer realm="metrics"' } })
    }
  }
  await app.register(fastifyMetrics, {
    endpoint: { url: '/metrics', method: 'GET', schema: { hide: true }, onRequest: guard, handler: () => undefined },
    clearRegisterOnInit: true,
    defaultMetrics: { enabled: true },
    routeMetrics: { enabled: true, routeBlacklist: ['/metrics'] },
  })
  const { Counter } = app.metrics.client
  const outcomes = {
    '/login': new Counter({ name: 'auth_login_total', help: 'Sign-in attempts by outcome', labelNames: ['outcome'] }),
    '/refresh': new Counter({ name: 'auth_refresh_total', help: 'Refresh attempts by outcome', labelNames: ['outcome'] }),
  } as const
  app.addHook('onResponse', async (request, reply) => {
    const counter = outcomes[request.routeOptions.url as keyof typeof outcomes]
    if (counter) counter.inc({ outcome: reply.statusCode < 400 ? 'success' : request.problemCode ?? String(reply.statusCode) })
  })
}

export default fp(metricsPlugin, { name: 'metrics', dependencies: ['config', 'errors'] })
