import { API_BASE_URL } from '../config.js'
import { isCompactJws } from './handover.js'

/**
 * A failed call, in terms the page can explain. `code` is the API's `error` value
 * (invalid_credentials, invalid_code, session_expired, rate_limited, weak_password, ...) or one
 * of our own: `network` (no answer: offline, DNS, CORS, timeout) and `unexpected` (an answer
 * that is not the API's JSON, such as a proxy's HTML error page). The raw body never reaches
 * the screen: only the known fields, each checked (see knownFields).
 */
export class ApiError extends Error {
  constructor(code, { status = 0, fields = {}, serverMessage = '', cause } = {}) {
    super(`API error: ${code}`, cause ? { cause } : undefined)
    this.name = 'ApiError'
    this.code = code
    this.status = status
    this.fields = fields
    /** The API's `message` when it is a short line of plain text (see plainMessage), else ''. */
    this.serverMessage = serverMessage
  }
}

const TIMEOUT_MS = 20_000

/** Seconds from a Retry-After header (delta-seconds or HTTP date), or undefined. */
function retryAfterHeader(headers) {
  const raw = headers?.get?.('Retry-After')
  if (!raw) return undefined
  if (/^\d+$/.test(raw.trim())) return Number(raw.trim())
  const at = Date.parse(raw)
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000))
}

function isPlainObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/** The rules a password can break (400 weak_password). */
export const PASSWORD_RULES = ['too_short', 'too_long', 'common', 'matches_email']

const MAX_MESSAGE = 300

/**
 * The API's `message` when it is a short line of plain text, else ''. Some errors (a weak
 * password, a sign-up the server refuses) carry the server's policy in it, such as the least
 * number of characters; anything longer or with markup-like characters is dropped.
 */
export function plainMessage(value) {
  if (typeof value !== 'string') return ''
  const text = value.trim()
  if (!text || text.length > MAX_MESSAGE || /[\u0000-\u001f\u007f<>{}]/.test(text)) return ''
  return text
}

/** Only the fields the page knows, each checked for its type. */
function knownFields(body, headers) {
  const fields = {}
  if (Number.isInteger(body.attempts_remaining)) fields.attemptsRemaining = Math.max(0, body.attempts_remaining)
  if (typeof body.reason === 'string') fields.reason = body.reason
  if (PASSWORD_RULES.includes(body.rule)) fields.rule = body.rule
  const retry = Number.isFinite(body.retry_after) ? body.retry_after : retryAfterHeader(headers)
  if (Number.isFinite(retry)) fields.retryAfter = Math.max(1, Math.ceil(retry))
  return fields
}

/** A trusted device's token as the server makes them: URL-safe base64, 16 to 512 characters. */
const DEVICE_TOKEN_PATTERN = /^[A-Za-z0-9_-]{16,512}$/

export function isDeviceToken(value) {
  return typeof value === 'string' && DEVICE_TOKEN_PATTERN.test(value)
}

/** Where the latest mail of a session is (POST /otp/status), in the order the server moves it. */
export const DELIVERY_STATES = [
  'queued',
  'sent',
  'delayed',
  'delivered',
  'rejected',
  'bounced',
  'complained',
  'suppressed',
]

/**
 * The calls of the sign-in, sign-up and password reset API, over fetch: a plain object with no
 * reactive state, so any component (or test) can make its own. Each resolves with the JSON body
 * of a 2xx or rejects with an ApiError.
 */
export function createOtpApi({ baseUrl = API_BASE_URL, timeoutMs = TIMEOUT_MS } = {}) {
  async function request(method, path, payload) {
    const controller = typeof AbortController === 'function' ? new AbortController() : undefined
    const timer = controller ? setTimeout(() => controller.abort(), timeoutMs) : undefined
    let response
    try {
      const init = {
        method,
        headers: { Accept: 'application/json' },
        signal: controller?.signal,
        credentials: 'omit',
        cache: 'no-store',
      }
      if (payload !== undefined) {
        init.headers['Content-Type'] = 'application/json'
        init.body = JSON.stringify(payload)
      }
      response = await fetch(`${baseUrl}${path}`, init)
    } catch (cause) {
      throw new ApiError('network', { cause })
    } finally {
      clearTimeout(timer)
    }
    let body
    try {
      body = await response.json()
    } catch (cause) {
      throw new ApiError('unexpected', { status: response.status, cause })
    }
    if (response.ok) {
      if (!isPlainObject(body)) throw new ApiError('unexpected', { status: response.status })
      return body
    }
    if (!isPlainObject(body) || typeof body.error !== 'string') {
      throw new ApiError('unexpected', { status: response.status })
    }
    throw new ApiError(body.error, {
      status: response.status,
      fields: knownFields(body, response.headers),
      serverMessage: plainMessage(body.message),
    })
  }

  const post = (path, payload) => request('POST', path, payload)

  /** Expect a positive whole number of seconds; the page's timers depend on it. */
  function seconds(value) {
    if (!Number.isFinite(value) || value < 0) throw new ApiError('unexpected', { status: 200 })
    return Math.floor(value)
  }

  /** A started challenge (202 of /signup and /password/reset, 200 of /otp): a code was emailed. */
  function challenge(body) {
    if (typeof body.session_id !== 'string' || !body.session_id) {
      throw new ApiError('unexpected', { status: 200 })
    }
    return {
      sessionId: body.session_id,
      expiresIn: seconds(body.expires_in),
      resendIn: seconds(body.resend_in),
    }
  }

  /**
   * A verified code (200 of /otp/verify, 201 of /signup/verify): `token` is the signed token, ''
   * when absent or malformed; `deviceToken`, the trusted device's, only when the answer has one.
   */
  function verified(body) {
    if (body.verified !== true) throw new ApiError('unexpected', { status: 200 })
    const result = {
      email: typeof body.email === 'string' ? body.email : '',
      token: isCompactJws(body.token) ? body.token : '',
    }
    if (isDeviceToken(body.device_token)) result.deviceToken = body.device_token
    return result
  }

  return {
    /**
     * POST /otp: check the password; a code is emailed. `deviceToken`, when given, is this
     * browser's token for the address (sent only when there is one).
     */
    async startSignIn(email, password, deviceToken = '') {
      const payload = { email, password }
      if (isDeviceToken(deviceToken)) payload.device_token = deviceToken
      return challenge(await post('/otp', payload))
    },

    /** POST /otp/verify: check the code. */
    async verifyCode(sessionId, code) {
      return verified(await post('/otp/verify', { session_id: sessionId, code }))
    },

    /** POST /otp/resend: a new code for the same session (any flow); the old one stops working. */
    async resendCode(sessionId) {
      const body = await post('/otp/resend', { session_id: sessionId })
      return { expiresIn: seconds(body.expires_in), resendIn: seconds(body.resend_in) }
    },

    /** POST /signup: a new account's email and password; a code is emailed to confirm it. */
    async signUp(email, password) {
      return challenge(await post('/signup', { email, password }))
    },

    /** POST /signup/verify: the emailed code; the account exists and the person is signed in. */
    async verifySignUp(sessionId, code) {
      return verified(await post('/signup/verify', { session_id: sessionId, code }))
    },

    /** POST /password/reset: a code is emailed if an account exists (the answer is the same). */
    async requestReset(email) {
      return challenge(await post('/password/reset', { email }))
    },

    /** POST /password/reset/confirm: the emailed code and the new password. */
    async confirmReset(sessionId, code, newPassword) {
      const body = await post('/password/reset/confirm', { session_id: sessionId, code, new_password: newPassword })
      if (body.reset !== true) throw new ApiError('unexpected', { status: 200 })
      return { reset: true }
    },

    /**
     * POST /otp/status: where the session's latest code is (queued, sent, delivered, delayed,
     * bounced, complained, rejected, suppressed) and since when (`at`, epoch seconds, null when
     * absent). 410 session_expired once the session is over.
     */
    async status(sessionId) {
      const body = await post('/otp/status', { session_id: sessionId })
      if (!DELIVERY_STATES.includes(body.delivery)) throw new ApiError('unexpected', { status: 200 })
      return { delivery: body.delivery, at: Number.isFinite(body.at) && body.at > 0 ? body.at : null }
    },

    /** GET /config: what the server allows; only `signup_enabled: true` turns sign-up on. */
    async config() {
      const body = await request('GET', '/config')
      return { signupEnabled: body.signup_enabled === true }
    },
  }
}
