/**
 * Build-time settings from Vite's env (see docs/frontend.md).
 *
 * VITE_API_BASE_URL: where the API lives, e.g. https://abc.execute-api.us-east-1.amazonaws.com/api.
 *   Empty means "the page's own origin" (a proxy or CloudFront in front of both).
 * VITE_OTP_CODE_LENGTH: digits per code, as the server's OTP_CODE_LENGTH (6 to 10, default 6).
 * VITE_RETURN_URL: where to post the token after a sign-in that came with ?state=..., e.g.
 *   https://app.example.com/callback (an absolute http(s) URL). Empty or invalid: no handover.
 * VITE_SIGNUP: "true" or "false" fixes whether the page offers "Create an account"; unset, the
 *   page asks the server (GET /config) when it starts.
 */

export const MIN_CODE_LENGTH = 6
export const MAX_CODE_LENGTH = 10
export const DEFAULT_CODE_LENGTH = 6

/** The code length from a raw env value; anything out of range falls back to the default. */
export function parseCodeLength(raw) {
  const text = String(raw ?? '').trim()
  if (!/^\d+$/.test(text)) return DEFAULT_CODE_LENGTH
  const value = Number(text)
  return value >= MIN_CODE_LENGTH && value <= MAX_CODE_LENGTH ? value : DEFAULT_CODE_LENGTH
}

/** The base URL without trailing slashes, so paths can be appended as `${base}/otp`. */
export function normalizeBaseUrl(raw) {
  return String(raw ?? '')
    .trim()
    .replace(/\/+$/, '')
}

/**
 * The return URL from a raw env value: `{ url, problem }`. `url` is the normalized absolute
 * http(s) URL, or '' when the value is empty or invalid; `problem` says why it was refused.
 */
export function parseReturnUrl(raw) {
  const text = String(raw ?? '').trim()
  if (!text) return { url: '', problem: '' }
  if (!/^https?:\/\//i.test(text)) return { url: '', problem: 'is not an absolute http(s) URL' }
  let parsed
  try {
    parsed = new URL(text)
  } catch {
    return { url: '', problem: 'is not a valid URL' }
  }
  if (!parsed.hostname) return { url: '', problem: 'has no host' }
  if (parsed.username || parsed.password) return { url: '', problem: 'must not contain a user name or password' }
  if (parsed.hash) return { url: '', problem: 'must not have a #fragment' }
  return { url: parsed.href, problem: '' }
}

/** The return URL to use, or ''; an invalid value is ignored with a console warning. */
export function readReturnUrl(raw, warn = console.warn) {
  const { url, problem } = parseReturnUrl(raw)
  if (problem) {
    const shown = JSON.stringify(String(raw).trim())
    warn(`VITE_RETURN_URL ${shown} ${problem}; it is ignored and the page shows its own "signed in" card.`)
  }
  return url
}

/**
 * VITE_SIGNUP as the page uses it: 'true' or 'false' when the build fixes it, '' to ask the
 * server (GET /config). Anything else is ignored, with a console warning.
 */
export function readSignup(raw, warn = console.warn) {
  const text = String(raw ?? '').trim().toLowerCase()
  if (text === 'true' || text === 'false') return text
  if (text) warn(`VITE_SIGNUP ${JSON.stringify(String(raw).trim())} is not "true" or "false"; it is ignored and the page asks the server (GET /config).`)
  return ''
}

export const API_BASE_URL = normalizeBaseUrl(import.meta.env.VITE_API_BASE_URL)
export const CODE_LENGTH = parseCodeLength(import.meta.env.VITE_OTP_CODE_LENGTH)
export const RETURN_URL = readReturnUrl(import.meta.env.VITE_RETURN_URL)
export const SIGNUP = readSignup(import.meta.env.VITE_SIGNUP)
