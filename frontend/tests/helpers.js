import { flushPromises } from '@vue/test-utils'
import { vi } from 'vitest'

/** A fetch Response with a JSON body, as the API sends them. */
export function json(status, body, headers = {}) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json', ...headers },
  })
}

/**
 * Replace the global fetch with a mock that answers the given responses in order. An entry is
 * a Response, an Error (fetch rejects with it, like a network failure) or a function of
 * (url, init) returning either.
 */
export function mockFetch(...answers) {
  const queue = [...answers]
  const fetch = vi.fn(async (url, init) => {
    if (queue.length === 0) throw new Error(`unexpected fetch: ${init?.method} ${url}`)
    let answer = queue.shift()
    if (typeof answer === 'function') answer = await answer(url, init)
    if (answer instanceof Error) throw answer
    return answer
  })
  vi.stubGlobal('fetch', fetch)
  return fetch
}

/** A fetch that stays pending until the test resolves it: for "while the call runs" checks. */
export function pendingFetch() {
  let resolve
  const fetch = vi.fn(
    () =>
      new Promise((done) => {
        resolve = done
      }),
  )
  vi.stubGlobal('fetch', fetch)
  return { fetch, resolve: (response) => resolve(response) }
}

/** The JSON body of the n-th fetch call. */
export function sentBody(fetch, n = 0) {
  return JSON.parse(fetch.mock.calls[n][1].body)
}

/** Fake clocks for countdowns; setImmediate stays real so flushPromises still works. */
export function useFakeClock(start = new Date('2030-01-01T12:00:00Z')) {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] })
  vi.setSystemTime(start)
}

/** Let fetch promises, response.json() and Vue's re-render all settle. */
export async function settle() {
  for (let i = 0; i < 3; i += 1) await flushPromises()
}

/** The text of the step's API error region (role="alert"), '' when empty. */
export function alertText(wrapper) {
  return wrapper.get('[data-test="alert"]').text()
}

/** The data-screen name of the screen on show (signin, code, signup, reset-request, ...). */
export function screenOf(wrapper) {
  return wrapper.get('main [data-screen]').attributes('data-screen')
}

/** The path of every call made to the mocked fetch, in order ("GET /config", "POST /otp"). */
export function callsOf(fetch) {
  return fetch.mock.calls.map(([url, init]) => `${init?.method ?? 'GET'} ${new URL(url, 'http://x').pathname}`)
}
