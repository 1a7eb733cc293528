import { computed, ref } from 'vue'
import { useCountdown } from './useCountdown.js'

/**
 * A submit button's wait after 429 rate_limited: `blocked` until the server's retry time,
 * `seconds` left for the button's text. `block(seconds)` starts the wait, `release()` ends it
 * (another address may not be limited).
 */
export function useRetryAfter() {
  const until = ref(null)
  const { seconds } = useCountdown(until)
  const blocked = computed(() => seconds.value > 0)
  return {
    seconds,
    blocked,
    block(wait) {
      if (wait) until.value = Date.now() + wait * 1000
    },
    release() {
      until.value = null
    },
  }
}
