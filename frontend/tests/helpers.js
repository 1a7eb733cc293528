import { flushPromises } from '@vue/test-utils'
import { expect, vi } from 'vitest'

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

/** Submit the form on show and let the answer settle. */
export async function submit(wrapper) {
  await wrapper.get('form').trigger('submit')
  await settle()
}

/** Type each value into its field (`{ '#email': 'a@example.com' }`, in order), then submit. */
export async function submitWith(wrapper, fields) {
  for (const [selector, value] of Object.entries(fields)) await wrapper.get(selector).setValue(value)
  await submit(wrapper)
}

/** The sign-in screen's email and password typed in and submitted. */
export function signIn(wrapper, email = 'demo@example.com', password = 'demo-password') {
  return submitWith(wrapper, { '#email': email, '#password': password })
}

/** A code typed into the code screen and submitted. */
export function enterCode(wrapper, code = '123456') {
  return submitWith(wrapper, { '#code': code })
}

/**
 * A screen's submit while its call runs (`pending` from pendingFetch, set before the mount): with
 * `fields` typed in, two submits make one call, and the button (data-test `button`) reads
 * `busyText` and is aria-disabled; once `answer` comes, `event` is emitted once.
 */
export async function expectOneCallWhileBusy(
  wrapper,
  { fetch, resolve },
  { fields, button = 'submit', busyText, answer, event },
) {
  for (const [selector, value] of Object.entries(fields)) await wrapper.get(selector).setValue(value)
  await wrapper.get('form').trigger('submit')
  await wrapper.get('form').trigger('submit')
  expect(wrapper.get(`[data-test="${button}"]`).text()).toBe(busyText)
  expect(wrapper.get(`[data-test="${button}"]`).attributes('aria-disabled')).toBe('true')
  expect(fetch).toHaveBeenCalledTimes(1)
  resolve(answer)
  await settle()
  expect(wrapper.emitted(event)).toHaveLength(1)
}
