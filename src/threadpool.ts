import { availableParallelism } from 'node:os'

// Imported first by the entry point, before anything touches libuv's thread pool. argon2 runs there:
// one thread per core keeps every core hashing at full speed, and no more, so the event loop (JWT
// checks, JSON, queries) is never starved by surplus hashing threads. An operator's value wins.
process.env.UV_THREADPOOL_SIZE ??= String(availableParallelism())
