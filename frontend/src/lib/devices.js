import { isDeviceToken } from './api.js'

/**
 * Trusted devices: after a verified code the API gives this browser a `device_token` for the
 * address, and the page sends it back with the next sign-in of that address (POST /otp). One
 * token per address in localStorage, under `simple-otp:device:<address>`, the address trimmed
 * and lowercased. Storage may be missing or refuse (private modes, a full quota, a blocked
 * origin): then the page simply signs in without a token.
 */

export const DEVICE_KEY_PREFIX = 'simple-otp:device:'

/** The storage key of an address: `simple-otp:device:demo@example.com`. */
export function deviceKey(email) {
  return `${DEVICE_KEY_PREFIX}${String(email ?? '').trim().toLowerCase()}`
}

function storage() {
  try {
    return window.localStorage ?? null
  } catch {
    return null // reading the property itself throws when storage is blocked
  }
}

/** The stored token for an address, or '' (none, not a token, or no storage). */
export function loadDeviceToken(email) {
  if (!String(email ?? '').trim()) return ''
  try {
    const value = storage()?.getItem(deviceKey(email))
    return isDeviceToken(value) ? value : ''
  } catch {
    return ''
  }
}

/** Keep the newest token for an address (it replaces the old one); true when it was stored. */
export function saveDeviceToken(email, token) {
  if (!String(email ?? '').trim() || !isDeviceToken(token)) return false
  try {
    const store = storage()
    if (!store) return false
    store.setItem(deviceKey(email), token)
    return true
  } catch {
    return false
  }
}
