/**
 * Email rules mirroring the server's (chalicelib/inputs.py): plain ASCII `local@domain`,
 * at most 254 characters, a dot-atom local part of at most 64 characters, two or more
 * LDH labels, and a top-level label that is not all digits. The server stays the judge;
 * this only saves a round trip and says what is wrong sooner.
 */

export const MAX_EMAIL = 254
export const MAX_PASSWORD = 1024

/** A password's length as the server counts it: characters (code points), not UTF-16 units. */
export function passwordLength(value) {
  return [...String(value ?? '')].length
}

const LOCAL = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/
const LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/

export function isValidEmail(value) {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_EMAIL) return false
  for (const ch of value) {
    const code = ch.codePointAt(0)
    if (code < 33 || code >= 127) return false // spaces, control and non-ASCII characters
  }
  const at = value.lastIndexOf('@')
  if (at < 0) return false
  const local = value.slice(0, at)
  const labels = value.slice(at + 1).split('.')
  return (
    local.length <= 64 &&
    LOCAL.test(local) &&
    labels.length >= 2 &&
    labels.every((label) => LABEL.test(label)) &&
    !/^\d+$/.test(labels[labels.length - 1])
  )
}

/** `a***@example.com`, as the server masks addresses: enough to recognise, not to harvest. */
export function maskEmail(address) {
  const text = String(address ?? '').toLowerCase()
  const at = text.indexOf('@')
  if (at < 0) return `${text.slice(0, 1)}***`
  return `${text.slice(0, 1)}***@${text.slice(at + 1)}`
}
