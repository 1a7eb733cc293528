/**
 * Build-time settings from Vite's env (see docs/frontend.md).
 *
 * VITE_API_BASE_URL: where the API lives, e.g. https://abc.execute-api.us-east-1.amazonaws.com/api.
 *   Empty means "the page's own origin" (a proxy or CloudFront in front of both).
 * VITE_OTP_CODE_LENGTH: digits per code, as the server's OTP_CODE_LENGTH (6 to 10, default 6).
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

export const API_BASE_URL = normalizeBaseUrl(import.meta.env.VITE_API_BASE_URL)
export const CODE_LENGTH = parseCodeLength(import.meta.env.VITE_OTP_CODE_LENGTH)
