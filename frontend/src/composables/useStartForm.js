import { computed, nextTick, ref } from 'vue'
import { emailProblem, errorMessage } from '../lib/messages.js'
import { useRetryAfter } from './useRetryAfter.js'

/**
 * What the first screens share (sign-in, sign-up, the reset's request): the email as typed,
 * its error once a submit was tried (`submitted`), the alert, the busy state, the button's wait
 * after 429 and its text, and the submit itself.
 *
 * `props.initialEmail` prefills the email; `emit('started', { email, ...session })` reports the
 * emailed code's session; `step` and `flow` name the call for errorMessage; `busyText` and
 * `idleText` are the button's words. `emailField` is the screen's EmailField template ref.
 *
 * `send(start, { check, refused })`: unless busy or waiting, checks the email, then `check()`
 * (the screen's other fields: false when one is wrong, with the focus moved there), then calls
 * `start(address)` with the trimmed address. A failure goes to `refused(failure)` first (true
 * when the screen has said what was wrong), else to the alert.
 */
export function useStartForm(props, emit, { step, flow, busyText, idleText }) {
  const email = ref(props.initialEmail)
  const busy = ref(false)
  const error = ref('')
  const submitted = ref(false) // field errors show once a submit was tried
  const emailField = ref(null)

  // After a 429 the button waits, with its own countdown; another address may not be limited.
  const { blocked, block, submitText } = useRetryAfter(email)
  const buttonText = submitText(busy, busyText, idleText)

  const emailError = computed(() => (submitted.value ? emailProblem(email.value) : ''))

  async function send(start, { check = () => true, refused = () => false } = {}) {
    if (busy.value || blocked.value) return
    submitted.value = true
    error.value = ''
    if (emailError.value) {
      emailField.value?.focus()
      return
    }
    if (!check()) return
    const address = email.value.trim()
    busy.value = true
    try {
      const started = await start(address)
      emit('started', { email: address, ...started })
    } catch (failure) {
      await nextTick() // an emptied alert, then the new text: read again even when it repeats
      if (refused(failure)) return
      error.value = errorMessage(failure, step, flow)
      if (failure?.code === 'rate_limited') block(failure.fields?.retryAfter)
    } finally {
      busy.value = false
    }
  }

  return { email, busy, error, submitted, emailField, emailError, blocked, buttonText, send }
}
