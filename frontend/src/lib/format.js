/** `4:05` for a countdown (minutes:seconds, or hours:minutes:seconds past an hour). */
export function formatClock(totalSeconds) {
  const s = Math.max(0, Math.floor(totalSeconds))
  const hours = Math.floor(s / 3600)
  const minutes = Math.floor((s % 3600) / 60)
  const seconds = String(s % 60).padStart(2, '0')
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, '0')}:${seconds}` : `${minutes}:${seconds}`
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}

/** A wait in words, for messages read once: "45 seconds", "3 minutes", "1 hour 20 minutes". */
export function formatWait(totalSeconds) {
  const s = Math.max(1, Math.ceil(totalSeconds))
  if (s < 60) return plural(s, 'second')
  const minutes = Math.ceil(s / 60)
  if (minutes < 60) return plural(minutes, 'minute')
  const hours = Math.floor(minutes / 60)
  const rest = minutes % 60
  return rest ? `${plural(hours, 'hour')} ${plural(rest, 'minute')}` : plural(hours, 'hour')
}

/** `14:36`: the local time of day of an epoch-seconds instant, 24-hour (en-GB), two digits each. */
export function formatTimeOfDay(epochSeconds) {
  return new Date(epochSeconds * 1000).toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit' })
}
