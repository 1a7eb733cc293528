import { isValidEmail, MAX_PASSWORD, passwordLength } from './email.js'
import { formatTimeOfDay, formatWait } from './format.js'

/**
 * What to tell the person for each failure. The texts are ours, not the server's: the page
 * never shows a response body, so nothing raw (JSON, HTML, a trace) can reach the screen. The
 * one exception is the API's own `message` for the errors that carry the server's policy
 * (weak_password, signup_disabled, signup_not_allowed, and invalid_request in sign-up and
 * reset), and only when it is a short line of plain text (`serverMessage`, see lib/api.js).
 */

/** What starts a flow over, in the words of each flow: `Sign in again`, `Start again`. */
const AGAIN = { signin: 'Sign in again', signup: 'Start again', reset: 'Start again' }

const ENDED = {
  expired: 'This code has expired.',
  used: 'This code was already used.',
  too_many_attempts: 'Too many wrong codes.',
}

const COMMON = {
  network: 'We could not reach the server. Check your connection and try again.',
  service_unavailable: 'The service is busy right now. Please try again in a moment.',
  unexpected: 'Something went wrong on our side. Please try again.',
  internal_error: 'Something went wrong on our side. Please try again.',
}

/** Our words for each rule of 400 weak_password, when the server's message cannot be used. */
export const PASSWORD_RULE_TEXT = {
  too_short: 'This password is too short. Choose a longer one.',
  too_long: 'This password is too long. Choose a shorter one.',
  common: 'This password is too common and easy to guess. Choose one that is harder to guess.',
  matches_email: 'The password must not be your email address, or too close to it. Choose another one.',
}

const STARTS = new Set(['start', 'signup', 'reset-request'])

function againOf(flow) {
  return AGAIN[flow] ?? AGAIN.signin
}

export function attemptsText(n, flow = 'signin') {
  if (n <= 0) return `No attempts are left. ${againOf(flow)} to get a new code.`
  return n === 1 ? 'You have 1 attempt left.' : `You have ${n} attempts left.`
}

/** What is wrong with an email address as typed (trimmed first), or '' when it will do. */
export function emailProblem(value) {
  const address = value.trim()
  if (!address) return 'Enter your email address.'
  if (!isValidEmail(address)) return 'Enter a valid email address, like name@example.com.'
  return ''
}

/** What is wrong with a password as typed, or ''; `missing` is the screen's words for an empty one. */
export function passwordProblem(value, missing) {
  if (!value) return missing
  if (passwordLength(value) > MAX_PASSWORD) return `The password can be at most ${MAX_PASSWORD} characters.`
  return ''
}

/** What is wrong with a password the server refused (400 weak_password). */
export function passwordMessage(error) {
  return (
    error?.serverMessage ||
    PASSWORD_RULE_TEXT[error?.fields?.rule] ||
    'This password is too easy to guess. Choose a longer, less common one.'
  )
}

const INVALID_REQUEST = {
  start: 'Check the email address and password, then try again.',
  signup: 'Check the email address and password, then try again.',
  'reset-request': 'Check the email address, then try again.',
  'reset-confirm': 'Check the code and the new password, then try again.',
}

/**
 * The message for an ApiError (or anything thrown) in one of the steps: `start` (sign-in's
 * email and password), `signup` (a new account's email and password), `reset-request` (the
 * email of a reset), `verify` (a code), `reset-confirm` (a code and a new password) or
 * `resend`; `flow` (signin, signup, reset) says how to start over when a code's session ends.
 */
export function errorMessage(error, step, flow = 'signin') {
  const code = error?.code
  const fields = error?.fields ?? {}
  const server = typeof error?.serverMessage === 'string' ? error.serverMessage : ''
  switch (code) {
    case 'invalid_credentials':
      return 'The email or password is not correct.'
    case 'invalid_code':
      return `That code is not correct. ${attemptsText(fields.attemptsRemaining ?? 0, flow)}`
    case 'session_expired':
      return `${ENDED[fields.reason] ?? ENDED.expired} ${againOf(flow)} to get a new one.`
    case 'rate_limited': {
      const wait = fields.retryAfter ? formatWait(fields.retryAfter) : 'a little while'
      return STARTS.has(step)
        ? `Too many codes were requested. Try again in ${wait}.`
        : `Too many codes were requested. You can ask for a new one in ${wait}.`
    }
    case 'weak_password':
      return passwordMessage(error)
    case 'signup_disabled':
      return server || 'Creating an account is not possible on this service. Sign in with an existing account.'
    case 'signup_not_allowed':
      return server || 'This email address cannot be used to create an account here.'
    case 'account_exists':
      return 'An account already exists for this email address. Sign in, or reset the password if you have forgotten it.'
    case 'invalid_request':
      if (flow !== 'signin' || step === 'signup' || step === 'reset-request') {
        return server || INVALID_REQUEST[step] || 'That code could not be checked. Enter the code from the email.'
      }
      return INVALID_REQUEST[step] ?? 'That code could not be checked. Enter the code from the email.'
    default:
      return COMMON[code] ?? COMMON.unexpected
  }
}

const NOT_DELIVERED = 'We could not deliver to this address.'

/** What each delivery state (POST /otp/status) tells the person on a code screen. */
const DELIVERY = {
  queued: 'Sending your code…',
  sent: 'Sent',
  delayed: 'Your provider is delaying it. It may still arrive.',
  bounced: NOT_DELIVERED,
  rejected: NOT_DELIVERED,
  suppressed: `${NOT_DELIVERED} Mail to this address is paused after earlier failures. Contact your administrator.`,
  complained: 'You marked our mail as spam, so we will not send more to this address.',
}

/** The words for a delivery state; `at` (epoch seconds) dates a delivery: "…provider at 14:36". */
export function deliveryText(state, at) {
  if (state === 'delivered') {
    return at ? `Delivered to your mail provider at ${formatTimeOfDay(at)}` : 'Delivered to your mail provider'
  }
  return DELIVERY[state] ?? DELIVERY.queued
}
