import { Type } from 'typebox'
import { Email, Password } from './common.js'

export const EmailToken = Type.String({ maxLength: 512, description: 'The token from the link in the email', examples: ['0mR3v6pQ2yYk8b1dX9sF4tH7jL5nC0aW2eG6iK8oU3z'] })

export const Accepted = Type.Object({ message: Type.String() }, { description: 'Accepted' })
export const FORGOT_ANSWER = { message: 'If an account uses this address, an email with a reset link is on its way.' }
export const RESEND_ANSWER = { message: 'If the address still needs verifying, a new link is on its way.' }

export const ForgotBody = Type.Object({ email: Email }, { additionalProperties: false, examples: [{ email: 'ada@example.com' }] })

export const ResetBody = Type.Object({ token: EmailToken, newPassword: Password }, {
  additionalProperties: false,
  examples: [{ token: '0mR3v6pQ2yYk8b1dX9sF4tH7jL5nC0aW2eG6iK8oU3z', newPassword: 'a brand new passphrase' }],
})

export const VerifyBody = Type.Object({ token: EmailToken }, { additionalProperties: false, examples: [{ token: '0mR3v6pQ2yYk8b1dX9sF4tH7jL5nC0aW2eG6iK8oU3z' }] })

export const EMAIL_CHANGE_ANSWER = { message: 'A link to confirm the change is on its way to the new address; until it is followed, nothing changes.' }

export const EmailChangeBody = Type.Object({
  newEmail: Email,
  currentPassword: Type.Optional(Type.String({ maxLength: 1024, description: 'Required unless the account has no password (made through an identity provider; then a sign-in within 10 minutes)' })),
}, { additionalProperties: false, examples: [{ newEmail: 'ada.king@example.com', currentPassword: 'correct horse battery staple' }] })

export const EmailChangeConfirmBody = Type.Object({ token: EmailToken }, { additionalProperties: false, examples: [{ token: '0mR3v6pQ2yYk8b1dX9sF4tH7jL5nC0aW2eG6iK8oU3z' }] })
