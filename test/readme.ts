import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const readme = new URL('../README.md', import.meta.url)

/** The shell blocks between `<!-- name:start -->` and `<!-- name:end -->` in README.md, as a reader copies them. */
export function readmeBlock (name: string): string {
  const text = readFileSync(readme, 'utf8')
  const section = new RegExp(`<!-- ${name}:start -->([\\s\\S]*?)<!-- ${name}:end -->`).exec(text)?.[1] ?? ''
  const blocks = [...section.matchAll(/```(?:sh|bash)\n([\s\S]*?)```/g)].map(m => m[1])
  if (blocks.length === 0) throw new Error(`README.md has no ${name} block`)
  return blocks.join('\n')
}

/** Runs a README block with bash against a server on `port` (the README says 3000). */
export function runReadmeBlock (name: string, port: number, terminal = false): Promise<{ code: number | null, output: string }> {
  const script = readmeBlock(name).replaceAll('localhost:3000', `localhost:${port}`).replaceAll(' :3000/', ` :${port}/`)
  const file = join(mkdtempSync(join(tmpdir(), 'readme-')), `${name}.sh`)
  writeFileSync(file, script)
  // In a terminal, as a reader runs it (HTTPie reads stdin when it is not one): `script` lends a pty.
  const [command, args] = terminal
    ? ['script', ['-qefc', `bash -euo pipefail ${file}`, '/dev/null']]
    : ['bash', ['-euo', 'pipefail', file]]
  return new Promise(resolve => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', d => { output += d })
    child.stderr.on('data', d => { output += d })
    // eslint-disable-next-line no-control-regex
    child.on('exit', code => resolve({ code, output: output.replace(/\r/g, '').replace(/\x1b\[[0-9;]*m/g, '') }))
  })
}
