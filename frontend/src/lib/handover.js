/**
 * Handing the sign-in back to the app that sent the person here (docs/frontend.md).
 *
 * The app opens the page with `?state=<opaque value>` and the build names its callback in
 * VITE_RETURN_URL. After the code is verified, the page posts `token` and `state` to that URL
 * with a form, so the token travels in a POST body only: never in a URL, never in storage.
 */

/** Longest state accepted; the example app sends 43 characters. */
export const MAX_STATE_LENGTH = 512

/** URL-safe characters only (RFC 3986 unreserved), so the value needs no escaping anywhere. */
const STATE_PATTERN = /^[A-Za-z0-9._~-]+$/

/** Longest token accepted (a compact JWS of a few hundred bytes in practice). */
export const MAX_TOKEN_LENGTH = 8192

const TOKEN_PATTERN = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/

/**
 * The `state` of a query string such as location.search, or '' when it is missing, given more
 * than once, too long or has other characters than the URL-safe ones.
 */
export function stateFrom(search) {
  const values = new URLSearchParams(String(search ?? '')).getAll('state')
  if (values.length !== 1) return ''
  const [state] = values
  return state.length <= MAX_STATE_LENGTH && STATE_PATTERN.test(state) ? state : ''
}

/** Whether a value has the shape of a compact JWS (three base64url parts), within bounds. */
export function isCompactJws(value) {
  return typeof value === 'string' && value.length <= MAX_TOKEN_LENGTH && TOKEN_PATTERN.test(value)
}

/** "app.example.com" or "127.0.0.1:8081": the host the person is sent back to. */
export function hostOf(url) {
  try {
    return new URL(url).host
  } catch {
    return ''
  }
}
