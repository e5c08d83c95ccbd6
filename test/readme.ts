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

// eslint-disable-next-line no-control-regex
const clean = (output: string) => output.replace(/\r/g, '').replace(/\x1b\[[0-9;]*m/g, '')

/**
 * What a reader types at the block's `read -rp '…'` prompts: called with the prompt's index (from 0) and
 * the output so far, as each prompt appears (bash shows them only in a terminal).
 */
export type Typist = (prompt: number, output: string) => string

/** Runs a README block with bash against a server on `port` (the README says 3000), in a folder of its own. */
export function runReadmeBlock (name: string, port: number, terminal = false, typist?: Typist): Promise<{ code: number | null, output: string }> {
  const script = readmeBlock(name).replaceAll('localhost:3000', `localhost:${port}`).replaceAll(' :3000/', ` :${port}/`)
  const dir = mkdtempSync(join(tmpdir(), 'readme-'))
  const file = join(dir, `${name}.sh`)
  writeFileSync(file, script)
  if (typist && !terminal) throw new Error('prompts are shown only in a terminal: run the block with terminal = true')
  // In a terminal, as a reader runs it (HTTPie reads stdin when it is not one): `script` lends a pty.
  const [command, args] = terminal
    ? ['script', ['-qefc', `bash -euo pipefail ${file}`, '/dev/null']]
    : ['bash', ['-euo', 'pipefail', file]]
  const prompts = [...script.matchAll(/read -rp '([^']+)'/g)].map(m => m[1]!).sort((a, b) => b.length - a.length)
  const promptPattern = new RegExp(prompts.map(p => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'g')
  return new Promise(resolve => {
    const child = spawn(command, args, { cwd: dir, stdio: [typist ? 'pipe' : 'ignore', 'pipe', 'pipe'] })
    let output = ''
    let answered = 0
    const onOutput = (d: Buffer) => {
      output += d
      if (!typist || prompts.length === 0) return
      for (const seen = output.match(promptPattern)?.length ?? 0; answered < seen; answered++) child.stdin!.write(`${typist(answered, clean(output))}\n`)
    }
    child.stdout!.on('data', onOutput)
    child.stderr!.on('data', onOutput)
    child.on('exit', code => {
      child.stdin?.end()
      resolve({ code, output: clean(output) })
    })
  })
}
