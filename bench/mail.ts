// The outbox against a local relay: how fast a backlog drains, and how long a sign-up's verification mail
// takes to reach the relay while sign-ups arrive at a steady rate.
import { randomBytes } from 'node:crypto'
import autocannon from 'autocannon'
import type postgres from 'postgres'
import { cpuMicros, sleep, type smtpSink } from './harness.js'

type Relay = Awaited<ReturnType<typeof smtpSink>>

const percentile = (sorted: number[], p: number) => sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(p / 100 * sorted.length) - 1)]! : NaN

/** Waits until the relay has a message for each address (or `timeoutMs` passes); the addresses still missing. */
async function arrived (relay: Relay, emails: string[], timeoutMs: number) {
  const deadline = Date.now() + timeoutMs
  let missing = emails
  while (missing.length && Date.now() < deadline) {
    await sleep(100)
    missing = missing.filter(e => relay.acceptedAt(e).length === 0)
  }
  return missing
}

/** Addresses that got more than one message. */
const twice = (relay: Relay, emails: string[]) => emails.filter(e => relay.acceptedAt(e).length > 1).length

/**
 * `count` sign-ups' verification mails, as /register leaves them (a user, its token, its outbox row),
 * committed in one statement so the sender finds them all at once; the drain rate is the messages from the
 * relay's first acceptance to its last.
 */
export async function drainRate (sql: postgres.Sql, relay: Relay, count: number, pid: number) {
  const tag = randomBytes(3).toString('hex')
  const emails = Array.from({ length: count }, (_, i) => `drain${i}.${tag}@example.com`)
  await sql`
    with u as (
      insert into users (id, email, created_at, updated_at)
      select gen_random_uuid(), 'drain' || i || ${`.${tag}@example.com`}, now(), now() from generate_series(0, ${count - 1}::int) i
      returning id, email
    ), t as (
      insert into email_tokens (id, user_id, purpose, token_hash, requested_at, expires_at)
      select gen_random_uuid(), u.id, 'verify', md5(random()::text) || u.id, now(), now() + interval '1 day' from u
      returning id, user_id
    )
    insert into outbox (id, kind, recipient, token_id, created_at, next_attempt_at)
    select gen_random_uuid(), 'verify_email', u.email, t.id, now(), now() from t join u on u.id = t.user_id`
  const committed = Date.now()
  const cpuBefore = cpuMicros(pid)
  const missing = await arrived(relay, emails, 300_000)
  const cpuMs = (cpuMicros(pid) - cpuBefore) / 1000
  const times = emails.flatMap(e => relay.acceptedAt(e)).sort((a, b) => a - b)
  const first = times[0]!
  const last = times.at(-1)!
  return {
    messages: count,
    perSecond: Math.round((times.length - 1) / ((last - first) / 1000)),
    firstAfterMs: first - committed,
    allAfterMs: last - committed,
    /** the service's CPU time per message (all its threads) */
    cpuMsPerMessage: +(cpuMs / count).toFixed(2),
    missing: missing.length,
    sentTwice: twice(relay, emails),
  }
}

/**
 * Sign-ups at `rate` a second for `seconds`, and for each the time from its 201 to the relay's acceptance of
 * its verification mail (the load generator and the relay share this process's clock).
 */
export async function signUpDelay (api: string, relay: Relay, rate: number, seconds: number) {
  const tag = randomBytes(3).toString('hex')
  const answeredAt = new Map<string, number>()
  let n = 0
  const result = await autocannon({
    url: api,
    // enough that a slow moment does not lower the rate offered
    connections: 64,
    overallRate: rate,
    duration: seconds,
    requests: [{
      method: 'POST',
      path: '/register',
      headers: { 'content-type': 'application/json' },
      setupRequest: req => ({ ...req, body: JSON.stringify({ email: `signup${n++}.${tag}@example.com`, password: 'a long bench passphrase for sign-up' }) }),
      onResponse: (status, body) => {
        if (status === 201) answeredAt.set((JSON.parse(body) as { user: { email: string } }).user.email, Date.now())
      },
    }],
  })
  const emails = [...answeredAt.keys()]
  const missing = await arrived(relay, emails, 60_000)
  const delays = emails.filter(e => relay.acceptedAt(e).length).map(e => relay.acceptedAt(e)[0]! - answeredAt.get(e)!).sort((a, b) => a - b)
  return {
    offered: rate,
    signUpsPerSecond: Math.round(result.requests.average),
    signUps: emails.length,
    non2xx: result.non2xx + result.errors,
    registerP99Ms: result.latency.p99,
    delayMs: { p50: percentile(delays, 50), p90: percentile(delays, 90), p99: percentile(delays, 99), max: delays.at(-1) ?? NaN },
    missing: missing.length,
    sentTwice: twice(relay, emails),
  }
}
