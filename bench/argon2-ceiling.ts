// The physical ceiling of sign-in and sign-up: raw argon2id with the service's parameters on every core.
import { availableParallelism } from 'node:os'
import { hash, verify } from '@node-rs/argon2'

const params = { algorithm: 2, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const
const seconds = Number(process.argv[2] ?? 5)
const mode = process.argv[3] === 'hash' ? 'hash' : 'verify'
const stored = await hash('a long passphrase for the bench', params)
let done = 0
const until = Date.now() + seconds * 1000
// one worker per core keeps every core hashing; the pool runs them in parallel
await Promise.all(Array.from({ length: availableParallelism() }, async () => {
  while (Date.now() < until) {
    if (mode === 'hash') await hash('a long passphrase for the bench', params)
    else await verify(stored, 'a long passphrase for the bench')
    done++
  }
}))
console.log(JSON.stringify({ mode, perSecond: done / seconds }))
