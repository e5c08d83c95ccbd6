// Preloaded with `node --require ./dist/threadpool.cjs` (`./src/threadpool.cjs` under tsx), because
// libuv reads UV_THREADPOOL_SIZE once, when its pool first starts, and Node's ES module loader
// starts it (reading the entry's files) before the entry's first line runs: set from an ES module,
// the value arrives too late and the pool keeps its default of 4 threads.
// argon2 runs in that pool. One thread per core keeps every core hashing and no more: on 2 cores a
// pool of 4 ran 4 hashes at once, each evicting the others' 19 MiB from the caches (12.5 ms of CPU
// per sign-in instead of 9.7 ms, 114 instead of 138 sign-ins a second), and left the event loop
// (JWT checks, JSON, queries) competing with twice as many hashing threads. An operator's value wins.
'use strict'
process.env.UV_THREADPOOL_SIZE ??= String(require('node:os').availableParallelism())
