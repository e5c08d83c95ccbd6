import { createServer, connect, type Server, type Socket } from 'node:net'

/** A TCP proxy to a local service that a test can cut and restore, to play an outage. */
export async function tcpProxy (targetPort: number, targetHost = '127.0.0.1') {
  const sockets = new Set<Socket>()
  let server: Server | undefined
  let port = 0
  const listen = () => new Promise<void>((resolve, reject) => {
    server = createServer(client => {
      const upstream = connect(targetPort, targetHost)
      for (const s of [client, upstream]) {
        sockets.add(s)
        s.on('close', () => sockets.delete(s))
        s.on('error', () => { client.destroy(); upstream.destroy() })
      }
      client.pipe(upstream).pipe(client)
    })
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => {
      port = (server!.address() as { port: number }).port
      resolve()
    })
  })
  await listen()
  return {
    get port () { return port },
    /** Drops every connection and stops listening: the service is "down". */
    async cut () {
      for (const s of sockets) s.destroy()
      await new Promise<void>(resolve => server!.close(() => resolve()))
    },
    /** Listens again on the same port. */
    restore: listen,
    async close () {
      for (const s of sockets) s.destroy()
      if (server?.listening) await new Promise<void>(resolve => server!.close(() => resolve()))
    },
  }
}
