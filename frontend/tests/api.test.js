import { describe, expect, it, vi } from 'vitest'
import { ApiError, createOtpApi, DELIVERY_STATES } from '../src/lib/api.js'
import { json, mockFetch, mockStatus, sentBody } from './helpers.js'

const api = () => createOtpApi({ baseUrl: 'http://api.test/api' })

async function failure(promise) {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('expected the call to fail')
}

describe('createOtpApi', () => {
  it('posts JSON to POST /otp and returns the timings', async () => {
    const fetch = mockFetch(json(200, { session_id: 'abc_123', expires_in: 300, resend_in: 30 }))
    const result = await api().startSignIn('demo@example.com', 'pw')
    expect(result).toEqual({ sessionId: 'abc_123', expiresIn: 300, resendIn: 30 })
    const [url, init] = fetch.mock.calls[0]
    expect(url).toBe('http://api.test/api/otp')
    expect(init.method).toBe('POST')
    expect(init.headers['Content-Type']).toBe('application/json')
    expect(init.credentials).toBe('omit')
    expect(sentBody(fetch)).toEqual({ email: 'demo@example.com', password: 'pw' })
  })

  it('posts the session and code to /otp/verify', async () => {
    const fetch = mockFetch(json(200, { verified: true, email: 'demo@example.com' }))
    expect(await api().verifyCode('s1', '123456')).toEqual({ email: 'demo@example.com', token: '' })
    expect(fetch.mock.calls[0][0]).toBe('http://api.test/api/otp/verify')
    expect(sentBody(fetch)).toEqual({ session_id: 's1', code: '123456' })
  })

  it('returns the token of /otp/verify when it has the shape of a compact JWS, else ""', async () => {
    const token = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl'
    mockFetch(
      json(200, { verified: true, email: 'demo@example.com', token, token_type: 'Bearer', expires_in: 300 }),
      json(200, { verified: true, email: 'demo@example.com', token: 'not a token' }),
      json(200, { verified: true, email: 'demo@example.com', token: `${token}.extra` }),
      json(200, { verified: true, email: 'demo@example.com', token: `a.b.${'c'.repeat(9000)}` }),
      json(200, { verified: true, email: 'demo@example.com', token: 42 }),
    )
    expect(await api().verifyCode('s1', '123456')).toEqual({ email: 'demo@example.com', token })
    for (let i = 0; i < 4; i += 1) {
      expect((await api().verifyCode('s1', '123456')).token).toBe('')
    }
  })

  it('posts the session to /otp/resend', async () => {
    const fetch = mockFetch(json(200, { expires_in: 300, resend_in: 30 }))
    expect(await api().resendCode('s1')).toEqual({ expiresIn: 300, resendIn: 30 })
    expect(fetch.mock.calls[0][0]).toBe('http://api.test/api/otp/resend')
    expect(sentBody(fetch)).toEqual({ session_id: 's1' })
  })

  it('posts the session to /otp/status and reads every delivery state with its time', async () => {
    const fetch = mockStatus(...DELIVERY_STATES.map((delivery) => json(200, { delivery, at: 1_900_000_000 })))
    for (const delivery of DELIVERY_STATES) {
      expect(await api().status('s1')).toEqual({ delivery, at: 1_900_000_000 })
    }
    const [url, init] = fetch.mock.calls[0]
    expect(url).toBe('http://api.test/api/otp/status')
    expect(init.method).toBe('POST')
    expect(init.credentials).toBe('omit')
    expect(sentBody(fetch)).toEqual({ session_id: 's1' })
  })

  it('reads a status without a usable time as at: null, and an unknown state as "unexpected"', async () => {
    mockStatus(
      json(200, { delivery: 'sent' }),
      json(200, { delivery: 'sent', at: 'soon' }),
      json(200, { delivery: 'opened', at: 1 }),
      json(200, { at: 1 }),
    )
    expect(await api().status('s1')).toEqual({ delivery: 'sent', at: null })
    expect(await api().status('s1')).toEqual({ delivery: 'sent', at: null })
    expect((await failure(api().status('s1'))).code).toBe('unexpected')
    expect((await failure(api().status('s1'))).code).toBe('unexpected')
  })

  it('reports 410 of /otp/status as session_expired with its status', async () => {
    mockStatus(json(410, { error: 'session_expired', message: 'x' }))
    const error = await failure(api().status('s1'))
    expect(error).toBeInstanceOf(ApiError)
    expect([error.code, error.status]).toEqual(['session_expired', 410])
  })

  it('turns an error body into an ApiError with its fields', async () => {
    mockFetch(json(401, { error: 'invalid_code', message: 'That code is not correct.', attempts_remaining: 2 }))
    const error = await failure(api().verifyCode('s1', '000000'))
    expect(error).toBeInstanceOf(ApiError)
    expect(error.code).toBe('invalid_code')
    expect(error.status).toBe(401)
    expect(error.fields).toEqual({ attemptsRemaining: 2 })
  })

  it('reads retry_after, or the Retry-After header when the body lacks it', async () => {
    mockFetch(
      json(429, { error: 'rate_limited', message: 'x', retry_after: 42 }, { 'Retry-After': '42' }),
      json(429, { error: 'rate_limited', message: 'x' }, { 'Retry-After': '17' }),
    )
    expect((await failure(api().resendCode('s1'))).fields.retryAfter).toBe(42)
    expect((await failure(api().resendCode('s1'))).fields.retryAfter).toBe(17)
  })

  it('keeps the reason of session_expired', async () => {
    mockFetch(json(410, { error: 'session_expired', message: 'x', reason: 'too_many_attempts' }))
    const error = await failure(api().verifyCode('s1', '123456'))
    expect(error.code).toBe('session_expired')
    expect(error.fields.reason).toBe('too_many_attempts')
  })

  it('reports a network failure as code "network"', async () => {
    mockFetch(new TypeError('Failed to fetch'))
    expect((await failure(api().startSignIn('a@b.co', 'pw'))).code).toBe('network')
  })

  it('gives up after the timeout as a network failure', async () => {
    vi.useFakeTimers()
    vi.stubGlobal(
      'fetch',
      vi.fn(
        (_url, init) =>
          new Promise((_resolve, reject) => {
            init.signal.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')))
          }),
      ),
    )
    const pending = failure(createOtpApi({ baseUrl: '', timeoutMs: 5000 }).startSignIn('a@b.co', 'pw'))
    await vi.advanceTimersByTimeAsync(5000)
    expect((await pending).code).toBe('network')
    vi.useRealTimers()
  })

  it('reports a non-JSON answer (a proxy error page) as "unexpected"', async () => {
    mockFetch(new Response('<html><body>502 Bad Gateway</body></html>', { status: 502 }))
    const error = await failure(api().startSignIn('a@b.co', 'pw'))
    expect(error.code).toBe('unexpected')
    expect(error.status).toBe(502)
  })

  it('reports JSON without an error code as "unexpected"', async () => {
    mockFetch(json(500, { message: 'Internal Server Error' }), json(200, ['not', 'an', 'object']))
    expect((await failure(api().startSignIn('a@b.co', 'pw'))).code).toBe('unexpected')
    expect((await failure(api().startSignIn('a@b.co', 'pw'))).code).toBe('unexpected')
  })

  it('rejects a 200 without the fields the page needs', async () => {
    mockFetch(json(200, { session_id: 'abc' }), json(200, { verified: false }))
    expect((await failure(api().startSignIn('a@b.co', 'pw'))).code).toBe('unexpected')
    expect((await failure(api().verifyCode('s', '123456'))).code).toBe('unexpected')
  })

  it('sends the device token with POST /otp only when there is one of the right shape', async () => {
    const device = 'dT1_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'
    const fetch = mockFetch(...Array.from({ length: 3 }, () => json(200, { session_id: 's', expires_in: 300, resend_in: 30 })))
    await api().startSignIn('demo@example.com', 'pw', device)
    await api().startSignIn('demo@example.com', 'pw', '')
    await api().startSignIn('demo@example.com', 'pw', 'bad token')
    expect(sentBody(fetch, 0)).toEqual({ email: 'demo@example.com', password: 'pw', device_token: device })
    expect(sentBody(fetch, 1)).toEqual({ email: 'demo@example.com', password: 'pw' })
    expect(sentBody(fetch, 2)).toEqual({ email: 'demo@example.com', password: 'pw' })
  })

  it('returns the device token of /otp/verify when it is URL-safe, and leaves it out otherwise', async () => {
    const device = 'Zm9vYmFyYmF6cXV4LXF1dXhfY29ycmVjdC1ob3JzZQ'
    mockFetch(
      json(200, { verified: true, email: 'demo@example.com', device_token: device }),
      json(200, { verified: true, email: 'demo@example.com', device_token: 'has space in it, not url safe' }),
      json(200, { verified: true, email: 'demo@example.com', device_token: 12345 }),
    )
    expect((await api().verifyCode('s1', '123456')).deviceToken).toBe(device)
    expect(await api().verifyCode('s1', '123456')).not.toHaveProperty('deviceToken')
    expect(await api().verifyCode('s1', '123456')).not.toHaveProperty('deviceToken')
  })

  it('posts a new account to /signup and reads the 202', async () => {
    const fetch = mockFetch(json(202, { session_id: 'su_1', expires_in: 600, resend_in: 45 }))
    expect(await api().signUp('new@example.com', 'correct horse')).toEqual({ sessionId: 'su_1', expiresIn: 600, resendIn: 45 })
    expect(fetch.mock.calls[0][0]).toBe('http://api.test/api/signup')
    expect(fetch.mock.calls[0][1].method).toBe('POST')
    expect(sentBody(fetch)).toEqual({ email: 'new@example.com', password: 'correct horse' })
  })

  it('posts the code to /signup/verify and reads the 201 like a verified sign-in', async () => {
    const token = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl'
    const device = 'dT1_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'
    const fetch = mockFetch(
      json(201, { verified: true, email: 'new@example.com', token, token_type: 'Bearer', expires_in: 300, device_token: device }),
      json(201, { verified: false }),
    )
    expect(await api().verifySignUp('su_1', '123456')).toEqual({ email: 'new@example.com', token, deviceToken: device })
    expect(fetch.mock.calls[0][0]).toBe('http://api.test/api/signup/verify')
    expect(sentBody(fetch)).toEqual({ session_id: 'su_1', code: '123456' })
    expect((await failure(api().verifySignUp('su_1', '123456'))).code).toBe('unexpected')
  })

  it('posts the email to /password/reset and reads the 202', async () => {
    const fetch = mockFetch(json(202, { session_id: 'pr_1', expires_in: 900, resend_in: 60 }), json(202, {}))
    expect(await api().requestReset('demo@example.com')).toEqual({ sessionId: 'pr_1', expiresIn: 900, resendIn: 60 })
    expect(fetch.mock.calls[0][0]).toBe('http://api.test/api/password/reset')
    expect(sentBody(fetch)).toEqual({ email: 'demo@example.com' })
    expect((await failure(api().requestReset('demo@example.com'))).code).toBe('unexpected')
  })

  it('posts the code and the new password to /password/reset/confirm', async () => {
    const fetch = mockFetch(json(200, { reset: true }), json(200, { reset: 'yes' }))
    expect(await api().confirmReset('pr_1', '123456', 'new secret words')).toEqual({ reset: true })
    expect(fetch.mock.calls[0][0]).toBe('http://api.test/api/password/reset/confirm')
    expect(sentBody(fetch)).toEqual({ session_id: 'pr_1', code: '123456', new_password: 'new secret words' })
    expect((await failure(api().confirmReset('pr_1', '123456', 'x'))).code).toBe('unexpected')
  })

  it('asks GET /config, without a body, whether sign-up is on', async () => {
    const fetch = mockFetch(
      json(200, { signup_enabled: true }),
      json(200, { signup_enabled: false }),
      json(200, { signup_enabled: 'true' }),
      json(200, {}),
    )
    expect(await api().config()).toEqual({ signupEnabled: true })
    const [url, init] = fetch.mock.calls[0]
    expect(url).toBe('http://api.test/api/config')
    expect(init.method).toBe('GET')
    expect(init.body).toBeUndefined()
    expect(init.headers).toEqual({ Accept: 'application/json' })
    expect(init.credentials).toBe('omit')
    for (let i = 0; i < 3; i += 1) expect(await api().config()).toEqual({ signupEnabled: false })
  })

  it('keeps the rule of weak_password and the message when it is plain text', async () => {
    mockFetch(
      json(400, { error: 'weak_password', message: 'Use at least 12 characters.', rule: 'too_short' }),
      json(400, { error: 'weak_password', message: '<b>html</b>', rule: 'made_up' }),
      json(400, { error: 'weak_password', message: 'x'.repeat(301), rule: 'common' }),
    )
    const first = await failure(api().signUp('a@b.co', 'pw'))
    expect(first.code).toBe('weak_password')
    expect(first.status).toBe(400)
    expect(first.fields).toEqual({ rule: 'too_short' })
    expect(first.serverMessage).toBe('Use at least 12 characters.')
    const second = await failure(api().signUp('a@b.co', 'pw'))
    expect(second.fields).toEqual({})
    expect(second.serverMessage).toBe('')
    const third = await failure(api().confirmReset('s', '123456', 'pw'))
    expect(third.fields).toEqual({ rule: 'common' })
    expect(third.serverMessage).toBe('')
  })
})
