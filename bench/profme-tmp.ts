import { spawn } from 'node:child_process'
import autocannon from 'autocannon'
import postgres from 'postgres'
import { generateSigningKey } from '/work/main/src/auth/keys.js'
const admin = postgres('postgres://postgres@127.0.0.1:5432/postgres', { max: 1, onnotice: () => {} })
const name = `auth_prof_${Date.now()}`
await admin.unsafe(`create database ${name}`)
const url = `postgres://postgres@127.0.0.1:5432/${name}`
const prof = process.argv[3] === 'prof' ? ['--cpu-prof', '--cpu-prof-dir=/tmp/profme'] : []
const child = spawn(process.execPath, [...prof, '--import', 'tsx', 'src/server.ts'], { cwd: '/work/main', env: { ...process.env, PORT: '3078', DATABASE_URL: url, JWT_PRIVATE_KEY: generateSigningKey().privatePem, NODE_ENV: 'production', LOG_LEVEL: 'warn', RATE_LIMIT_IP: '1000000', RATE_LIMIT_REGISTER_IP: '1000000' }, stdio: ['ignore', 'ignore', 'inherit'] })
for (;;) { try { if ((await fetch('http://127.0.0.1:3078/ready')).ok) break } catch {} await new Promise(r => setTimeout(r, 100)) }
const toks: string[] = []
for (let i = 0; i < 20; i++) toks.push(((await (await fetch('http://127.0.0.1:3078/register', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: `p${i}@example.com`, password: 'a long passphrase here' }) })).json()) as { accessToken: string }).accessToken)
let k = 0
const r = await autocannon({ url: 'http://127.0.0.1:3078', connections: Number(process.argv[2] ?? 16), duration: 5, requests: [{ method: 'GET', path: '/me', setupRequest: (req: autocannon.Request) => ({ ...req, headers: { authorization: `Bearer ${toks[k++ % toks.length]}` } }) }] })
console.log('rps', r.requests.average, 'p99', r.latency.p99, 'non2xx', r.non2xx)
child.kill('SIGINT')
await new Promise(r => child.on('exit', r))
await admin.unsafe(`drop database ${name} with (force)`); await admin.end()
