import { computed, getCurrentScope, onScopeDispose, ref, toValue, watch } from 'vue'

const TICK_MS = 250

/**
 * Whole seconds left until `deadline` (a ref or getter of epoch milliseconds, or null).
 *
 * The count is recomputed from Date.now() on every tick rather than decremented, so it stays
 * right when the browser throttles timers in a background tab or the laptop sleeps; it is
 * also refreshed the moment the tab becomes visible again, and whenever the deadline moves.
 */
export function useCountdown(deadline) {
  const now = ref(Date.now())
  let timer

  const stop = () => {
    clearInterval(timer)
    timer = undefined
  }
  const refresh = () => {
    now.value = Date.now()
    const at = toValue(deadline)
    if (at != null && at > now.value) {
      if (timer === undefined) timer = setInterval(refresh, TICK_MS)
    } else {
      stop() // tick only while there is something to count down
    }
  }
  watch(() => toValue(deadline), refresh, { immediate: true })

  const onVisible = () => {
    if (document.visibilityState === 'visible') refresh()
  }
  if (typeof document !== 'undefined') document.addEventListener('visibilitychange', onVisible)

  if (getCurrentScope()) {
    onScopeDispose(() => {
      stop()
      if (typeof document !== 'undefined') document.removeEventListener('visibilitychange', onVisible)
    })
  }

  const seconds = computed(() => {
    const at = toValue(deadline)
    if (at == null) return 0
    return Math.max(0, Math.ceil((at - now.value) / 1000))
  })

  return { seconds, refresh }
}
