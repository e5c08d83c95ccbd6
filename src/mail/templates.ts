import type { OutboxKind } from '../db/schema.js'

export interface Message { to: string, from: string, subject: string, text: string, html: string }

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`)

/** The mails that carry a link with a token. */
export type LinkKind = Extract<OutboxKind, 'password_reset' | 'verify_email' | 'email_change'>

const copy: Record<LinkKind, { path: string, lead: string, action: string, tail: (minutes: number) => string }> = {
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
    tail: minutes => `The link works once, for ${duration(minutes)}. If you did not create an account, ignore this email.`,
  },
  email_change: {
    path: '/confirm-email',
    lead: 'Someone asked to make this the email address of their account.',
    action: 'Use this email address',
    tail: minutes => `The link works once, for ${duration(minutes)}. If you did not ask for it, ignore this email: nothing changes.`,
  },
}

const duration = (minutes: number) => minutes >= 120 ? `${Math.round(minutes / 60)} hours` : `${minutes} minutes`

/** The link a mail carries: from configuration, never from a request's Host header. */
export const linkFor = (appUrl: string, kind: LinkKind, token: string) => `${appUrl}${copy[kind].path}?token=${token}`

function page (paragraphs: string[], link?: { href: string, label: string }, tail?: string): string {
  return `<!doctype html>
<html><body style="font-family: sans-serif; line-height: 1.5">
${paragraphs.map(p => `<p>${escapeHtml(p)}</p>`).join('\n')}
${link ? `<p><a href="${escapeHtml(link.href)}">${escapeHtml(link.label)}</a></p>\n` : ''}${tail ? `<p style="color: #555">${escapeHtml(tail)}</p>\n` : ''}</body></html>
`
}

/** Plain-text and HTML bodies of one mail with a link. */
export function render (kind: LinkKind, options: { to: string, from: string, subject: string, link: string, ttlSeconds: number }): Message {
  const c = copy[kind]
  const tail = c.tail(Math.round(options.ttlSeconds / 60))
  const text = `${c.lead}\n\n${c.action}:\n${options.link}\n\n${tail}\n`
  return { to: options.to, from: options.from, subject: options.subject, text, html: page([c.lead], { href: options.link, label: c.action }, tail) }
}

/** The security notices mailed to the account's address (never a token or secret in them). */
export type NoticeType =
  | 'password_changed' | 'password_reset' | 'email_change_requested' | 'email_changed' | 'mfa_enabled' | 'mfa_disabled'
  | 'recovery_codes_regenerated' | 'recovery_code_used' | 'passkey_added' | 'account_suspended'

const IF_NOT_YOU = 'If this was not you, reset your password at once and review the sessions and sign-in methods of your account.'

/** Security notices: what happened, in the account owner's words; never a token, code or secret. */
const notices: Record<NoticeType, { subject: string, body: (facts: Record<string, string>) => string[] }> = {
  password_changed: { subject: 'Your password was changed', body: () => ['The password of your account was just changed. Every other session was signed out.', IF_NOT_YOU] },
  password_reset: { subject: 'Your password was reset', body: () => ['The password of your account was just reset through an emailed link. Every session was signed out.', IF_NOT_YOU] },
  email_change_requested: {
    subject: 'A change of your email address was asked for',
    body: f => [`Someone signed in to your account asked to change its email address to ${f.newEmail ?? 'another address'}. Nothing changes unless the link sent to that address is followed.`, IF_NOT_YOU],
  },
  email_changed: {
    subject: 'Your email address was changed',
    body: f => [`The email address of your account was changed to ${f.newEmail ?? 'another address'}. This address no longer signs in to it and gets no more mail about it.`, 'If this was not you, contact support at once.'],
  },
  mfa_enabled: { subject: 'Two-factor sign-in was turned on', body: () => ['Two-factor sign-in with an authenticator app was turned on for your account. Every other session was signed out.', IF_NOT_YOU] },
  mfa_disabled: { subject: 'Two-factor sign-in was turned off', body: () => ['Two-factor sign-in was turned off for your account: signing in no longer asks for a code.', IF_NOT_YOU] },
  recovery_codes_regenerated: { subject: 'New recovery codes were made', body: () => ['New recovery codes were made for your account; the old ones no longer work.', IF_NOT_YOU] },
  recovery_code_used: {
    subject: 'A recovery code was used',
    body: f => [f.recoveryCodesLeft !== undefined
      ? `A recovery code was used to sign in to your account. ${f.recoveryCodesLeft} unused recovery codes are left.`
      : 'A recovery code of your account was used to confirm a change of its two-factor sign-in.', IF_NOT_YOU],
  },
  passkey_added: { subject: 'A passkey was added', body: f => [`A passkey${f.name ? ` named "${f.name}"` : ''} was added to your account; it can now sign in.`, IF_NOT_YOU] },
  account_suspended: {
    subject: 'Your account was suspended',
    body: f => [`Your account was suspended${f.until ? ` until ${f.until}` : ''}: it cannot sign in, and every session was signed out.${f.reason ? ` Reason: ${f.reason}` : ''}`, 'Contact support if you think this is a mistake.'],
  },
}

/** A security notice's bodies; `facts` are what the event left in the outbox row. */
export function renderNotice (notice: NoticeType, facts: Record<string, string>, options: { to: string, from: string }): Message {
  const n = notices[notice]
  const paragraphs = n.body(facts)
  return { to: options.to, from: options.from, subject: n.subject, text: `${paragraphs.join('\n\n')}\n`, html: page(paragraphs) }
}

export const isNotice = (value: unknown): value is NoticeType => typeof value === 'string' && Object.hasOwn(notices, value)
