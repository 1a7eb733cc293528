import { describe, expect, it, vi } from 'vitest'
import { ApiError, createOtpApi } from '../src/lib/api.js'
import { json, mockFetch, sentBody } from './helpers.js'

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
})
