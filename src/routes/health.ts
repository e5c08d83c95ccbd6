import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { ping } from '../db/client.js'
import { ApiError } from '../errors.js'
import { problemResponses } from '../schemas/common.js'

const Status = Type.Object({ status: Type.String() })
const ok = (status: string, description: string) => ({ ...Status, description, examples: [{ status }] })
const READY_TIMEOUT_MS = 2000

export default async function healthRoutes (app: FastifyInstance) {
  app.get('/health', {
    schema: { tags: ['ops'], operationId: 'health', summary: 'The process is running', response: { 200: ok('ok', 'The process is running'), ...problemResponses() } },
  }, async () => ({ status: 'ok' }))

  app.get('/ready', {
    schema: { tags: ['ops'], operationId: 'ready', summary: 'The database answers', response: { 200: ok('ready', 'The database answers'), ...problemResponses() } },
  }, async () => {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new ApiError('service_unavailable', 'The database did not answer in time')), READY_TIMEOUT_MS)
    })
    try {
      await Promise.race([ping(app.db), timeout])
    } catch (err) {
      throw err instanceof ApiError ? err : new ApiError('service_unavailable', 'The database is unavailable', { cause: err })
    } finally {
      clearTimeout(timer)
    }
    return { status: 'ready' }
  })
}
