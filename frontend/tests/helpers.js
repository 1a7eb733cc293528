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
 * A fetch that answers `answers` in order: Responses, Errors (rejected, like a network failure)
 * or functions of (url, init) returning either.
 */
function scripted(answers, { repeatLast = false } = {}) {
  const queue = [...answers]
  return vi.fn(async (url, init) => {
    if (queue.length === 0) throw new Error(`unexpected fetch: ${init?.method} ${url}`)
    let answer = repeatLast && queue.length === 1 ? queue[0] : queue.shift()
    if (typeof answer === 'function') answer = await answer(url, init)
    else if (answer instanceof Response) answer = answer.clone()
    if (answer instanceof Error) throw answer
    return answer
  })
}

const isStatusCall = (url) => new URL(url, 'http://x').pathname.endsWith('/otp/status')

/**
 * The code screens ask POST /otp/status on their own timers. Those calls go to this mock, apart
 * from the test's own answers (so a poll never takes an answer meant for a verify or a resend,
 * and `fetch` counts only the calls a test made); without mockStatus they are answered 410,
 * which ends the polling without a word.
 */
let statusFetch
export function resetStatus() {
  const over = json(410, { error: 'session_expired', message: 'x', reason: 'expired' })
  statusFetch = scripted([over], { repeatLast: true })
}
resetStatus()

/**
 * Script the answers of POST /otp/status, in order, the last one repeated for every later
 * call (as mockFetch's answers). Returns the mock, to count the calls.
 */
export function mockStatus(...answers) {
  statusFetch = scripted(answers, { repeatLast: true })
  return statusFetch
}

/** A 200 of POST /otp/status. */
export function statusAnswer(delivery, at = 1_900_000_000) {
  return json(200, { delivery, at })
}

/** The global fetch: status polls to the status mock, every other call to `main`. */
function stubFetch(main) {
  vi.stubGlobal('fetch', (url, init) => (isStatusCall(url) ? statusFetch(url, init) : main(url, init)))
  return main
}

/**
 * Replace the global fetch with a mock that answers the given responses in order. An entry is
 * a Response, an Error (fetch rejects with it, like a network failure) or a function of
 * (url, init) returning either. Status polls are answered apart (see mockStatus).
 */
export function mockFetch(...answers) {
  return stubFetch(scripted(answers))
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
  stubFetch(fetch)
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
