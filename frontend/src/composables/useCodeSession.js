import { computed, nextTick, onMounted, ref, watch } from 'vue'
import { maskEmail } from '../lib/email.js'
import { formatClock } from '../lib/format.js'
import { errorMessage } from '../lib/messages.js'
import { useCountdown } from './useCountdown.js'
import { useDeliveryStatus } from './useDeliveryStatus.js'

/** The props of every code screen: the session of the emailed code. */
export const codeSessionProps = {
  email: { type: String, required: true },
  sessionId: { type: String, required: true },
  /** Epoch milliseconds when the code stops working. */
  expiresAt: { type: Number, required: true },
  /** Epoch milliseconds when "Resend code" becomes available. */
  resendAt: { type: Number, required: true },
  codeLength: { type: Number, default: 6 },
}

/**
 * What every code screen shares (sign-in's and sign-up's code, the reset's code and new
 * password): the code as typed and its error, with the focus on it from the start; the code's
 * expiry and the resend wait, counted down from deadlines; "Resend code" (POST /otp/resend, for
 * every flow); the alert and status texts; and the end of a session (`closed`: expired, used,
 * too_many_attempts, or a reason of the screen's own); and where the mail is (`deliveryState`, `deliveryAt`, see
 * useDeliveryStatus), asked again after each resend, no more once the session is closed.
 *
 * `props` are codeSessionProps; `flow` is signin, signup or reset; `resentText(masked)` is the
 * status after a resend. `codeField` and `restartButton` are the screen's template refs: the
 * CodeField, and the button shown once the session is closed.
 */
export function useCodeSession(props, { api, flow, resentText }) {
  const code = ref('')
  const codeError = ref('')
  const codeField = ref(null)
  const restartButton = ref(null)
  const focusCode = () => codeField.value?.focus()
  const focusClosed = () => restartButton.value?.focus()

  const error = ref('')
  const status = ref('')
  const resending = ref(false)
  const closed = ref('')

  const expiresAt = ref(props.expiresAt)
  const resendAt = ref(props.resendAt)
  const { seconds: expirySeconds } = useCountdown(expiresAt)
  const { seconds: resendSeconds } = useCountdown(resendAt)

  const delivery = useDeliveryStatus(() => props.sessionId, { api })
  watch(closed, (reason) => {
    if (reason) delivery.stop()
  })

  const masked = computed(() => maskEmail(props.email))
  const resendDisabled = computed(() => resendSeconds.value > 0 || resending.value || Boolean(closed.value))
  const resendText = computed(() => {
    if (resending.value) return 'Sending…'
    if (resendSeconds.value > 0) return `Resend code in ${formatClock(resendSeconds.value)}`
    return 'Resend code'
  })

  watch(code, (value) => {
    if (codeError.value && value.length === props.codeLength) codeError.value = ''
  })

  onMounted(focusCode)

  /** The field's own check of the code, before any call: false, its error set and the focus on it, when it is short. */
  function checkCode() {
    codeError.value = code.value.length === props.codeLength ? '' : `Enter the ${props.codeLength}-digit code from the email.`
    if (codeError.value) focusCode()
    return !codeError.value
  }

  async function close(reason, message) {
    closed.value = reason
    error.value = message
    await nextTick()
    focusClosed()
  }

  // The code's own clock: when it runs out, say so rather than wait for a failed submit.
  watch(
    expirySeconds,
    (left) => {
      if (left === 0 && !closed.value) {
        close('expired', errorMessage({ code: 'session_expired', fields: { reason: 'expired' } }, 'verify', flow))
      }
    },
    { immediate: true },
  )

  /** A failed submit of the code: ends the session, or says what was wrong. true when handled. */
  async function codeFailure(failure, step) {
    const message = errorMessage(failure, step, flow)
    if (failure?.code === 'session_expired') {
      await close(failure.fields?.reason || 'expired', message)
      return true
    }
    if (failure?.code === 'invalid_code' && (failure.fields?.attemptsRemaining ?? 0) <= 0) {
      await close('too_many_attempts', message)
      return true
    }
    return false
  }

  /**
   * A failed submit the session lives through: its message in the alert, a wrong code cleared,
   * the focus on the code.
   */
  function codeRefused(failure, message) {
    error.value = message
    if (failure?.code === 'invalid_code') code.value = ''
    focusCode()
  }

  async function resend() {
    if (resendDisabled.value) return
    error.value = ''
    status.value = ''
    resending.value = true
    try {
      const result = await api.resendCode(props.sessionId)
      const now = Date.now()
      expiresAt.value = now + result.expiresIn * 1000
      resendAt.value = now + result.resendIn * 1000
      delivery.restart()
      code.value = ''
      codeError.value = ''
      status.value = resentText(masked.value)
      await nextTick()
      focusCode()
    } catch (failure) {
      const message = errorMessage(failure, 'resend', flow)
      if (failure?.code === 'session_expired') {
        await close(failure.fields?.reason || 'expired', message)
      } else {
        if (failure?.code === 'rate_limited' && failure.fields?.retryAfter) {
          resendAt.value = Date.now() + failure.fields.retryAfter * 1000
        }
        error.value = message
      }
    } finally {
      resending.value = false
    }
  }

  return {
    code,
    codeError,
    codeField,
    restartButton,
    error,
    status,
    closed,
    deliveryState: delivery.state,
    deliveryAt: delivery.at,
    masked,
    expirySeconds,
    resendDisabled,
    resendText,
    checkCode,
    close,
    codeFailure,
    codeRefused,
    resend,
  }
}
