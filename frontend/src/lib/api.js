import { API_BASE_URL } from '../config.js'
import { isCompactJws } from './handover.js'

/**
 * A failed call, in terms the page can explain. `code` is the API's `error` value
 * (invalid_credentials, invalid_code, session_expired, rate_limited, ...) or one of our own:
 * `network` (no answer: offline, DNS, CORS, timeout) and `unexpected` (an answer that is not
 * the API's JSON, such as a proxy's HTML error page). The raw body never reaches the screen.
 */
export class ApiError extends Error {
  constructor(code, { status = 0, fields = {}, cause } = {}) {
    super(`API error: ${code}`, cause ? { cause } : undefined)
    this.name = 'ApiError'
    this.code = code
    this.status = status
    this.fields = fields
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

/** Only the fields the page knows, each checked for its type. */
function knownFields(body, headers) {
  const fields = {}
  if (Number.isInteger(body.attempts_remaining)) fields.attemptsRemaining = Math.max(0, body.attempts_remaining)
  if (typeof body.reason === 'string') fields.reason = body.reason
  const retry = Number.isFinite(body.retry_after) ? body.retry_after : retryAfterHeader(headers)
  if (Number.isFinite(retry)) fields.retryAfter = Math.max(1, Math.ceil(retry))
  return fields
}

/**
 * The three calls of the sign-in API, over fetch: a plain object with no reactive state, so
 * any component (or test) can make its own. Each resolves with the JSON body of a 200 or
 * rejects with an ApiError.
 */
export function createOtpApi({ baseUrl = API_BASE_URL, timeoutMs = TIMEOUT_MS } = {}) {
  async function post(path, payload) {
    const controller = typeof AbortController === 'function' ? new AbortController() : undefined
    const timer = controller ? setTimeout(() => controller.abort(), timeoutMs) : undefined
    let response
    try {
      response = await fetch(`${baseUrl}${path}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify(payload),
        signal: controller?.signal,
        credentials: 'omit',
        cache: 'no-store',
      })
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
    throw new ApiError(body.error, { status: response.status, fields: knownFields(body, response.headers) })
  }

  /** Expect a positive whole number of seconds; the page's timers depend on it. */
  function seconds(value) {
    if (!Number.isFinite(value) || value < 0) throw new ApiError('unexpected', { status: 200 })
    return Math.floor(value)
  }

  return {
    /** POST /otp: check the password; a code is emailed. */
    async startSignIn(email, password) {
      const body = await post('/otp', { email, password })
      if (typeof body.session_id !== 'string' || !body.session_id) {
        throw new ApiError('unexpected', { status: 200 })
      }
      return {
        sessionId: body.session_id,
        expiresIn: seconds(body.expires_in),
        resendIn: seconds(body.resend_in),
      }
    },

    /** POST /otp/verify: check the code; `token` is the signed token, or '' when absent or malformed. */
    async verifyCode(sessionId, code) {
      const body = await post('/otp/verify', { session_id: sessionId, code })
      if (body.verified !== true) throw new ApiError('unexpected', { status: 200 })
      return {
        email: typeof body.email === 'string' ? body.email : '',
        token: isCompactJws(body.token) ? body.token : '',
      }
    },

    /** POST /otp/resend: a new code for the same session; the old one stops working. */
    async resendCode(sessionId) {
      const body = await post('/otp/resend', { session_id: sessionId })
      return { expiresIn: seconds(body.expires_in), resendIn: seconds(body.resend_in) }
    },
  }
}
