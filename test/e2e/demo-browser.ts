import { existsSync } from 'node:fs'
import { chromium } from 'playwright-core'
import type { Test } from '../helper.js'
import { liveServer } from '../live-server.js'

export const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

// CI installs Debian's chromium; a developer without it sees these tests skipped, not passed.
export const needsChromium = !existsSync(CHROMIUM) && !process.env.CI ? `${CHROMIUM} is not installed` : false

/** A server of its own (plain http on 127.0.0.1, so the development cookie) and a Chromium page, both closed with the test; page errors collected. */
export async function demoBrowser (t: Test, env: Record<string, string>) {
  const server = await liveServer(t, { COOKIE_SECURE: 'false', ...env })
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS })
  t.teardown(() => browser.close())
  const context = await browser.newContext()
  const page = await context.newPage()
  const errors: string[] = []
  page.on('pageerror', e => errors.push(e.message))
  return { server, context, page, errors }
}
