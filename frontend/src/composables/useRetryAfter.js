import { computed, ref, watch } from 'vue'
import { formatClock } from '../lib/format.js'
import { useCountdown } from './useCountdown.js'

/**
 * A submit button's wait after 429 rate_limited: `blocked` until the server's retry time,
 * `seconds` left for the button's text. `block(seconds)` starts the wait, `release()` ends it;
 * a change of `releaseOn` (a ref or getter: the address typed) ends it too, as another address
 * may not be limited. `submitText(busy, busyText, idleText)` is the button's text: `busyText`
 * while the call runs, "Try again in m:ss" while it waits, else `idleText`.
 */
export function useRetryAfter(releaseOn) {
  const until = ref(null)
  const { seconds } = useCountdown(until)
  const blocked = computed(() => seconds.value > 0)
  const release = () => {
    until.value = null
  }
  if (releaseOn) watch(releaseOn, release)
  return {
    seconds,
    blocked,
    block(wait) {
      if (wait) until.value = Date.now() + wait * 1000
    },
    release,
    submitText(busy, busyText, idleText) {
      return computed(() => {
        if (busy.value) return busyText
        if (blocked.value) return `Try again in ${formatClock(seconds.value)}`
        return idleText
      })
    },
  }
}
