import { formatWait } from './format.js'

/**
 * What to tell the person for each failure. The texts are ours, not the server's: the page
 * never shows a response body, so nothing raw (JSON, HTML, a trace) can reach the screen.
 */

const EXPIRED = {
  expired: 'This code has expired. Sign in again to get a new one.',
  used: 'This code was already used. Sign in again to get a new one.',
  too_many_attempts: 'Too many wrong codes. Sign in again to get a new one.',
}

const COMMON = {
  network: 'We could not reach the server. Check your connection and try again.',
  service_unavailable: 'The service is busy right now. Please try again in a moment.',
  unexpected: 'Something went wrong on our side. Please try again.',
  internal_error: 'Something went wrong on our side. Please try again.',
}

export function attemptsText(n) {
  if (n <= 0) return 'No attempts are left. Sign in again to get a new code.'
  return n === 1 ? 'You have 1 attempt left.' : `You have ${n} attempts left.`
}

/**
 * The message for an ApiError (or anything thrown) in one of the steps:
 * `start` (email and password), `verify` (the code) or `resend`.
 */
export function errorMessage(error, step) {
  const code = error?.code
  const fields = error?.fields ?? {}
  switch (code) {
    case 'invalid_credentials':
      return 'The email or password is not correct.'
    case 'invalid_code':
      return `That code is not correct. ${attemptsText(fields.attemptsRemaining ?? 0)}`
    case 'session_expired':
      return EXPIRED[fields.reason] ?? EXPIRED.expired
    case 'rate_limited': {
      const wait = fields.retryAfter ? formatWait(fields.retryAfter) : 'a little while'
      return step === 'start'
        ? `Too many codes were requested. Try again in ${wait}.`
        : `Too many codes were requested. You can ask for a new one in ${wait}.`
    }
    case 'invalid_request':
      return step === 'start'
        ? 'Check the email address and password, then try again.'
        : 'That code could not be checked. Enter the code from the email.'
    default:
      return COMMON[code] ?? COMMON.unexpected
  }
}
