import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'

const readme = new URL('../README.md', import.meta.url)

/** The shell block between the walkthrough markers of README.md, exactly as a reader copies it. */
export function readmeWalkthrough (): string {
  const text = readFileSync(readme, 'utf8')
  const section = /<!-- walkthrough:start -->([\s\S]*?)<!-- walkthrough:end -->/.exec(text)?.[1] ?? ''
  const blocks = [...section.matchAll(/```(?:sh|bash)\n([\s\S]*?)```/g)].map(m => m[1])
  if (blocks.length === 0) throw new Error('README.md has no walkthrough block')
  return blocks.join('\n')
}

/** Runs the walkthrough with bash against a server on `port` (the README says 3000). */
export function runReadmeWalkthrough (port: number): Promise<{ code: number | null, output: string }> {
  const script = readmeWalkthrough().replaceAll('localhost:3000', `localhost:${port}`)
  return new Promise(resolve => {
    const child = spawn('bash', ['-euo', 'pipefail', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', d => { output += d })
    child.stderr.on('data', d => { output += d })
    child.on('exit', code => resolve({ code, output }))
  })
}
