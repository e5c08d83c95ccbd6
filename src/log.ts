// What reaches a log line. Secrets never do: request headers and body fields are redacted, and errors
// are rebuilt from safe parts (a failed query's message and stack carry its parameters, a password hash
// among them, so only the SQL text is kept).
export const REDACT = [
  'req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]',
  '*.password', '*.newPassword', '*.currentPassword', '*.passwordHash', '*.refreshToken', '*.accessToken', '*.token',
  '*.mfaToken', '*.recoveryCode', '*.recoveryCodes', '*.secret', '*.otpauthUrl', '*.qrSvg',
]

interface SafeError { type: string, message: string, code?: string, stack?: string, cause?: SafeError }

export function serializeError (err: unknown, depth = 0): SafeError | unknown {
  if (!(err instanceof Error)) return err
  const e = err as Error & { code?: unknown, query?: unknown }
  const fromQuery = typeof e.query === 'string' && 'params' in e
  const message = fromQuery ? `Failed query: ${String(e.query)}` : e.message
  const out: SafeError = { type: e.name, message }
  if (typeof e.code === 'string') out.code = e.code
  // the first stack line repeats the message; keep only the frames
  if (e.stack) out.stack = `${e.name}: ${message}\n${e.stack.split('\n').filter(l => /^\s+at /.test(l)).join('\n')}`
  if (e.cause !== undefined && depth < 3) out.cause = serializeError(e.cause, depth + 1) as SafeError
  return out
}

interface LoggedRequest { method: string, url: string, host?: string, ip?: string, socket?: { remotePort?: number } }

/**
 * Request lines keep the path and the names of query parameters, never their values: a link's token
 * (`/reset-password?token=…`) or a searched email would otherwise sit in every log.
 */
export function serializeRequest (req: LoggedRequest) {
  const at = req.url.indexOf('?')
  const url = at === -1 ? req.url : `${req.url.slice(0, at)}?${[...new URLSearchParams(req.url.slice(at + 1)).keys()].map(k => `${k}=[redacted]`).join('&')}`
  return { method: req.method, url, host: req.host, remoteAddress: req.ip, remotePort: req.socket?.remotePort }
}
