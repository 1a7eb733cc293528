import { describe, expect, it } from 'vitest'
import { normalizeBaseUrl, parseCodeLength } from '../src/config.js'
import { isValidEmail, maskEmail } from '../src/lib/email.js'
import { formatClock, formatWait } from '../src/lib/format.js'
import { errorMessage } from '../src/lib/messages.js'

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
