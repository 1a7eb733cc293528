import { describe, expect, it, vi } from 'vitest'
import { normalizeBaseUrl, parseCodeLength, readSignup } from '../src/config.js'
import { isValidEmail, maskEmail } from '../src/lib/email.js'
import { formatClock, formatWait } from '../src/lib/format.js'
import { errorMessage, PASSWORD_RULE_TEXT } from '../src/lib/messages.js'

describe('isValidEmail mirrors the server rules', () => {
  it.each([
    'demo@example.com',
    'first.last+tag@sub.example.co',
    "o'brien@example.org",
    'x@a-b.example',
    `${'a'.repeat(64)}@example.com`,
  ])('accepts %s', (address) => {
    expect(isValidEmail(address)).toBe(true)
  })

  it.each([
    ['empty', ''],
    ['no at sign', 'demo.example.com'],
    ['no domain dot', 'demo@localhost'],
    ['space', 'de mo@example.com'],
    ['display name', 'Demo <demo@example.com>'],
    ['two addresses', 'a@example.com,b@example.com'],
    ['non-ASCII look-alike', 'demo@exаmple.com'],
    ['control character', 'demo\n@example.com'],
    ['leading dot', '.demo@example.com'],
    ['double dot', 'de..mo@example.com'],
    ['numeric top-level label', 'demo@1.2'],
    ['label starting with a hyphen', 'demo@-example.com'],
    ['local part over 64', `${'a'.repeat(65)}@example.com`],
    ['over 254 characters', `a@${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(63)}.${'e'.repeat(63)}.com`],
  ])('rejects %s', (_, address) => {
    expect(isValidEmail(address)).toBe(false)
  })
})

describe('maskEmail', () => {
  it('keeps the first character and the domain, as the server does', () => {
    expect(maskEmail('alice@example.com')).toBe('a***@example.com')
    expect(maskEmail('Bob.Smith@Example.COM')).toBe('b***@example.com')
  })
})

describe('formatting', () => {
  it('formats countdowns as m:ss', () => {
    expect(formatClock(300)).toBe('5:00')
    expect(formatClock(65)).toBe('1:05')
    expect(formatClock(9)).toBe('0:09')
    expect(formatClock(3725)).toBe('1:02:05')
    expect(formatClock(-3)).toBe('0:00')
  })

  it('formats waits in words', () => {
    expect(formatWait(1)).toBe('1 second')
    expect(formatWait(42)).toBe('42 seconds')
    expect(formatWait(61)).toBe('2 minutes')
    expect(formatWait(3600)).toBe('1 hour')
    expect(formatWait(4801)).toBe('1 hour 21 minutes')
  })
})

describe('config', () => {
  it('reads the code length, falling back to 6 outside 6 to 10', () => {
    expect(parseCodeLength(undefined)).toBe(6)
    expect(parseCodeLength('8')).toBe(8)
    expect(parseCodeLength('10')).toBe(10)
    expect(parseCodeLength('5')).toBe(6)
    expect(parseCodeLength('11')).toBe(6)
    expect(parseCodeLength('7.5')).toBe(6)
  })

  it('reads VITE_SIGNUP: "true" or "false" fix it, anything else asks the server', () => {
    const warn = vi.fn()
    expect(readSignup('true', warn)).toBe('true')
    expect(readSignup(' FALSE ', warn)).toBe('false')
    expect(readSignup(undefined, warn)).toBe('')
    expect(readSignup('', warn)).toBe('')
    expect(warn).not.toHaveBeenCalled()
    expect(readSignup('yes', warn)).toBe('')
    expect(warn).toHaveBeenCalledOnce()
    expect(warn.mock.calls[0][0]).toContain('VITE_SIGNUP "yes"')
  })

  it('drops trailing slashes from the API base URL', () => {
    expect(normalizeBaseUrl('https://api.example.com/api/')).toBe('https://api.example.com/api')
    expect(normalizeBaseUrl(undefined)).toBe('')
  })
})

describe('errorMessage', () => {
  it('explains every error code in words, never echoing the server', () => {
    const cases = [
      [{ code: 'invalid_credentials' }, 'start', 'The email or password is not correct.'],
      [{ code: 'invalid_code', fields: { attemptsRemaining: 3 } }, 'verify', 'You have 3 attempts left.'],
      [{ code: 'invalid_code', fields: { attemptsRemaining: 1 } }, 'verify', 'You have 1 attempt left.'],
      [{ code: 'session_expired', fields: { reason: 'used' } }, 'verify', 'already used'],
      [{ code: 'session_expired', fields: { reason: 'nonsense' } }, 'verify', 'has expired'],
      [{ code: 'rate_limited', fields: { retryAfter: 90 } }, 'start', 'Try again in 2 minutes.'],
      [{ code: 'network' }, 'start', 'could not reach the server'],
      [{ code: 'service_unavailable' }, 'verify', 'busy'],
      [{ code: 'something_new' }, 'verify', 'Something went wrong'],
      [new TypeError('boom'), 'start', 'Something went wrong'],
    ]
    for (const [error, step, expected] of cases) {
      const text = errorMessage(error, step)
      expect(text).toContain(expected)
      expect(text).not.toMatch(/[{}<>]|boom|undefined/)
    }
  })
})

describe('errorMessage for sign-up and reset', () => {
  it('tells each flow how to start over when its code session ends', () => {
    const ended = { code: 'session_expired', fields: { reason: 'expired' } }
    expect(errorMessage(ended, 'verify')).toBe('This code has expired. Sign in again to get a new one.')
    expect(errorMessage(ended, 'verify', 'signup')).toBe('This code has expired. Start again to get a new one.')
    expect(errorMessage(ended, 'reset-confirm', 'reset')).toBe('This code has expired. Start again to get a new one.')
    const last = { code: 'invalid_code', fields: { attemptsRemaining: 0 } }
    expect(errorMessage(last, 'reset-confirm', 'reset')).toBe(
      'That code is not correct. No attempts are left. Start again to get a new code.',
    )
  })

  it('words weak_password by its rule, preferring the server\'s plain message', () => {
    for (const rule of ['too_short', 'too_long', 'common', 'matches_email']) {
      expect(errorMessage({ code: 'weak_password', fields: { rule } }, 'signup', 'signup')).toBe(PASSWORD_RULE_TEXT[rule])
    }
    expect(new Set(Object.values(PASSWORD_RULE_TEXT)).size).toBe(4)
    expect(
      errorMessage({ code: 'weak_password', fields: { rule: 'too_short' }, serverMessage: 'Use at least 12 characters.' }, 'signup'),
    ).toBe('Use at least 12 characters.')
    expect(errorMessage({ code: 'weak_password', fields: {} }, 'reset-confirm', 'reset')).toContain('too easy to guess')
  })

  it('shows the server\'s words for a refused sign-up, with our own when there are none', () => {
    const refused = { code: 'signup_not_allowed', serverMessage: 'Only addresses at example.com can sign up.' }
    expect(errorMessage(refused, 'signup', 'signup')).toBe('Only addresses at example.com can sign up.')
    expect(errorMessage({ code: 'signup_not_allowed' }, 'signup', 'signup')).toBe(
      'This email address cannot be used to create an account here.',
    )
    expect(errorMessage({ code: 'signup_disabled' }, 'signup', 'signup')).toContain('not possible')
    expect(errorMessage({ code: 'account_exists' }, 'verify', 'signup')).toContain('An account already exists')
  })

  it('keeps sign-in\'s own invalid_request words, and uses the server\'s in the new flows', () => {
    const bad = { code: 'invalid_request', serverMessage: "The field 'email' is too long." }
    expect(errorMessage(bad, 'start')).toBe('Check the email address and password, then try again.')
    expect(errorMessage(bad, 'signup', 'signup')).toBe("The field 'email' is too long.")
    expect(errorMessage({ code: 'invalid_request' }, 'reset-request', 'reset')).toBe('Check the email address, then try again.')
    expect(errorMessage({ code: 'rate_limited', fields: { retryAfter: 30 } }, 'reset-request', 'reset')).toBe(
      'Too many codes were requested. Try again in 30 seconds.',
    )
  })
})
