import { getCurrentScope, onScopeDispose, ref, toValue } from 'vue'

/** The first look at the status, this long after a send. */
export const FIRST_POLL_MS = 1_000
/** Each wait after that doubles, up to this. */
export const MAX_POLL_MS = 15_000
/** The states a mail does not leave: polling stops there. */
export const FINAL_STATES = ['delivered', 'bounced', 'complained', 'rejected', 'suppressed']

const hidden = () => typeof document !== 'undefined' && document.hidden

/**
 * Where the session's latest code is, from POST /otp/status: `state` (queued until the server
 * says more) and `at` (epoch seconds of that state, or null).
 *
 * It asks FIRST_POLL_MS after the send, then waits twice as long each time, up to MAX_POLL_MS,
 * until a final state or a 410 (the session is over: it stops without a word). A network error,
 * a 5xx or a 429 only makes it wait longer (at least the server's Retry-After); nothing about
 * the status ever reaches the alert. It does not ask while the page is hidden, and asks at once
 * when it is visible again. `restart()` is for a resend: queued again, from the first wait;
 * `stop()` ends it. Timers and the listener go with the component's scope.
 */
export function useDeliveryStatus(sessionId, { api }) {
  const state = ref('queued')
  const at = ref(null)

  let timer
  /** The wait before the next question. */
  let wait = FIRST_POLL_MS
  let running = false
  /** Which send the answers belong to; a restart makes older answers stale. */
  let round = 0
  let asking = false

  const clear = () => {
    clearTimeout(timer)
    timer = undefined
  }

  function schedule(ms) {
    clear()
    if (running) timer = setTimeout(ask, ms)
  }

  /** On its timer, and on every visibilitychange: a hidden page asks nothing until it is visible again. */
  async function ask() {
    if (!running || hidden() || asking) return
    const mine = round
    asking = true
    let retryAfter = 0
    try {
      const result = await api.status(toValue(sessionId))
      if (mine !== round) return
      state.value = result.delivery
      at.value = result.at
      if (FINAL_STATES.includes(result.delivery)) running = false
    } catch (failure) {
      if (mine !== round) return
      if (failure?.status === 410) running = false
      else retryAfter = (failure?.fields?.retryAfter ?? 0) * 1000
    } finally {
      if (mine === round) asking = false
    }
    wait = Math.min(wait * 2, MAX_POLL_MS)
    schedule(Math.max(wait, retryAfter))
  }

  function start() {
    round += 1
    asking = false
    running = true
    wait = FIRST_POLL_MS
    state.value = 'queued'
    at.value = null
    schedule(wait)
  }

  function stop() {
    running = false
    clear()
  }

  if (typeof document !== 'undefined') document.addEventListener('visibilitychange', ask)
  if (getCurrentScope()) {
    onScopeDispose(() => {
      stop()
      round += 1
      if (typeof document !== 'undefined') document.removeEventListener('visibilitychange', ask)
    })
  }

  start()
  return { state, at, restart: start, stop }
}
