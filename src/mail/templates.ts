import type { OutboxKind } from '../db/schema.js'

export interface Message { to: string, from: string, subject: string, text: string, html: string }

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`)

const copy: Record<OutboxKind, { path: string, lead: string, action: string, tail: (minutes: number) => string }> = {
  password_reset: {
    path: '/reset-password',
    lead: 'Someone asked to reset the password of the account with this email address.',
    action: 'Choose a new password',
    tail: minutes => `The link works once, for ${minutes} minutes. If you did not ask for it, ignore this email: your password stays as it is.`,
  },
  verify_email: {
    path: '/verify-email',
    lead: 'Please confirm that this email address is yours.',
    action: 'Verify my email address',
    tail: minutes => `The link works once, for ${minutes >= 120 ? `${Math.round(minutes / 60)} hours` : `${minutes} minutes`}. If you did not create an account, ignore this email.`,
  },
}

/** The link a mail carries: from configuration, never from a request's Host header. */
export const linkFor = (appUrl: string, kind: OutboxKind, token: string) => `${appUrl}${copy[kind].path}?token=${token}`

/** Plain-text and HTML bodies of one mail. */
export function render (kind: OutboxKind, options: { to: string, from: string, subject: string, link: string, ttlSeconds: number }): Message {
  const c = copy[kind]
  const tail = c.tail(Math.round(options.ttlSeconds / 60))
  const text = `${c.lead}\n\n${c.action}:\n${options.link}\n\n${tail}\n`
  const html = `<!doctype html>
<html><body style="font-family: sans-serif; line-height: 1.5">
<p>${escapeHtml(c.lead)}</p>
<p><a href="${escapeHtml(options.link)}">${escapeHtml(c.action)}</a></p>
<p style="color: #555">${escapeHtml(tail)}</p>
</body></html>
`
  return { to: options.to, from: options.from, subject: options.subject, text, html }
}
