import { mount } from '@vue/test-utils'
import { afterEach, describe, expect, it, vi } from 'vitest'
import CodeStep from '../src/components/CodeStep.vue'
import DeliveryStatus from '../src/components/DeliveryStatus.vue'
import ResetConfirmStep from '../src/components/ResetConfirmStep.vue'
import { FINAL_STATES, FIRST_POLL_MS, MAX_POLL_MS } from '../src/composables/useDeliveryStatus.js'
import { DELIVERY_STATES } from '../src/lib/api.js'
import { deliveryText } from '../src/lib/messages.js'
import { alertText, json, mockFetch, mockStatus, sentBody, settle, statusAnswer, useFakeClock } from './helpers.js'

function mountStep(component = CodeStep, props = {}) {
  const now = Date.now()
  return mount(component, {
    props: {
      email: 'alice@example.com',
      sessionId: 'sess_1',
      expiresAt: now + 300_000,
      resendAt: now + 30_000,
      ...props,
    },
    attachTo: document.body,
  })
}

/** Fake time passing in small steps, each letting the status answers and Vue settle. */
async function pass(ms, step = 250) {
  for (let done = 0; done < ms; done += step) {
    await vi.advanceTimersByTimeAsync(Math.min(step, ms - done))
    await settle()
  }
}

/** A status mock that notes when (ms after `start`) each call came, answering with `answer()`. */
function timedStatus(answer) {
  const start = Date.now()
  const times = []
  const fetch = mockStatus(() => {
    times.push(Date.now() - start)
    return answer(times.length)
  })
  return { fetch, times }
}

const delivery = (wrapper) => wrapper.get('.delivery')
const stateOf = (wrapper) => delivery(wrapper).attributes('data-delivery')

/** document.hidden as the browser reports it, with the event it sends when that changes. */
function setHidden(value) {
  Object.defineProperty(document, 'hidden', { configurable: true, get: () => value })
  document.dispatchEvent(new Event('visibilitychange'))
}

afterEach(() => {
  delete document.hidden // back to happy-dom's own getter
})

describe('delivery status on the code screens', () => {
  it('waits 1 s, then twice as long each time, up to 15 s', async () => {
    expect([FIRST_POLL_MS, MAX_POLL_MS]).toEqual([1_000, 15_000])
    useFakeClock()
    const { fetch, times } = timedStatus(() => statusAnswer('queued'))
    mountStep()
    await pass(999)
    expect(times).toEqual([])
    await pass(70_000)
    expect(times).toEqual([1_000, 3_000, 7_000, 15_000, 30_000, 45_000, 60_000])
    expect(fetch.mock.calls[0][0]).toMatch(/\/otp\/status$/)
    expect(fetch.mock.calls[0][1].method).toBe('POST')
    expect(sentBody(fetch)).toEqual({ session_id: 'sess_1' })
  })

  it('shows each state it is told, in one polite status region', async () => {
    useFakeClock()
    mockStatus(statusAnswer('sent'), statusAnswer('delayed'))
    const wrapper = mountStep()
    expect(wrapper.findAll('[data-delivery]')).toHaveLength(1)
    expect(stateOf(wrapper)).toBe('queued')
    expect(delivery(wrapper).text()).toBe('Sending your code…')
    expect(delivery(wrapper).attributes('role')).toBe('status')
    expect(delivery(wrapper).attributes('aria-live')).toBe('polite')
    await pass(1_000)
    expect(stateOf(wrapper)).toBe('sent')
    expect(delivery(wrapper).text()).toBe('Sent')
    await pass(2_000)
    expect(stateOf(wrapper)).toBe('delayed')
    expect(delivery(wrapper).text()).toBe('Your provider is delaying it. It may still arrive.')
  })

  it.each(FINAL_STATES)('stops at the final state %s', async (final) => {
    useFakeClock()
    const { times } = timedStatus((n) => statusAnswer(n === 1 ? 'sent' : final))
    const wrapper = mountStep()
    await pass(120_000)
    setHidden(false)
    await settle()
    expect(times).toEqual([1_000, 3_000])
    expect(stateOf(wrapper)).toBe(final)
    expect(delivery(wrapper).text()).toBe(deliveryText(final, 1_900_000_000))
  })

  it('keeps asking while the mail is only delayed', async () => {
    useFakeClock()
    const { times } = timedStatus(() => statusAnswer('delayed'))
    mountStep()
    await pass(60_000)
    expect(times).toHaveLength(7)
  })

  it('stops without a word on 410', async () => {
    useFakeClock()
    const { times } = timedStatus((n) =>
      n === 1 ? statusAnswer('sent') : json(410, { error: 'session_expired', message: 'x', reason: 'used' }),
    )
    const wrapper = mountStep()
    await pass(120_000)
    setHidden(false)
    await settle()
    expect(times).toEqual([1_000, 3_000])
    expect(stateOf(wrapper)).toBe('sent')
    expect(alertText(wrapper)).toBe('')
    expect(wrapper.find('#code').exists()).toBe(true)
  })

  it('keeps backing off on network errors, 5xx and 429 (at least its Retry-After), never saying so', async () => {
    useFakeClock()
    const answers = [
      () => new TypeError('Failed to fetch'),
      () => json(503, { error: 'service_unavailable', message: 'x' }),
      () => new Response('<html>502</html>', { status: 502 }),
      () => json(429, { error: 'rate_limited', message: 'x', retry_after: 40 }),
      () => statusAnswer('delivered'),
    ]
    const { times } = timedStatus((n) => answers[n - 1]())
    const wrapper = mountStep()
    await pass(20_000)
    expect(stateOf(wrapper)).toBe('queued')
    expect(alertText(wrapper)).toBe('')
    await pass(60_000)
    // 1, +2, +4, +8, then the 429's 40 s rather than 15.
    expect(times).toEqual([1_000, 3_000, 7_000, 15_000, 55_000])
    expect(stateOf(wrapper)).toBe('delivered')
    expect(alertText(wrapper)).toBe('')
  })

  it('does not ask while the page is hidden, and asks at once when it is visible again', async () => {
    useFakeClock()
    const { times } = timedStatus(() => statusAnswer('sent'))
    mountStep()
    await pass(1_000)
    expect(times).toEqual([1_000])
    setHidden(true)
    await pass(60_000)
    expect(times).toEqual([1_000])
    setHidden(false)
    await settle()
    expect(times).toEqual([1_000, 61_000])
    await pass(4_000)
    expect(times).toEqual([1_000, 61_000, 65_000])
  })

  it('does not ask when its timer fires in a hidden page, and waits for it to be visible', async () => {
    useFakeClock()
    const { times } = timedStatus(() => statusAnswer('sent'))
    mountStep()
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => true })
    await pass(30_000)
    expect(times).toEqual([])
    setHidden(false)
    await settle()
    expect(times).toEqual([30_000])
  })

  it('drops the pending wait when it asks on becoming visible', async () => {
    useFakeClock()
    const { times } = timedStatus(() => statusAnswer('sent'))
    mountStep()
    await pass(1_500) // asked at 1 s; the next question is due at 3 s
    setHidden(true)
    await pass(500)
    setHidden(false)
    await settle()
    await pass(10_000)
    expect(times).toEqual([1_000, 2_000, 6_000])
  })

  it('asks one question at a time', async () => {
    useFakeClock()
    let answer
    const fetch = mockStatus(
      () =>
        new Promise((resolve) => {
          answer = resolve
        }),
    )
    mountStep()
    await pass(1_000)
    setHidden(false)
    setHidden(false)
    await settle()
    expect(fetch).toHaveBeenCalledTimes(1)
    answer(statusAnswer('delivered'))
    await settle()
    expect(fetch).toHaveBeenCalledTimes(1)
  })

  it('starts over from queued after a resend', async () => {
    useFakeClock()
    let answer = 'delivered'
    const { times } = timedStatus(() => statusAnswer(answer))
    const fetch = mockFetch(json(200, { expires_in: 300, resend_in: 30 }))
    const wrapper = mountStep(CodeStep, { resendAt: Date.now() + 10_000 })
    await pass(10_000)
    expect(times).toEqual([1_000])
    expect(stateOf(wrapper)).toBe('delivered')
    answer = 'bounced'
    await wrapper.get('[data-test="resend"]').trigger('click')
    await settle()
    expect(sentBody(fetch)).toEqual({ session_id: 'sess_1' })
    expect(stateOf(wrapper)).toBe('queued')
    expect(delivery(wrapper).text()).toBe('Sending your code…')
    await pass(999)
    expect(times).toEqual([1_000])
    await pass(1)
    expect(times).toEqual([1_000, 11_000])
    expect(stateOf(wrapper)).toBe('bounced')
  })

  it('ignores an answer about the previous send that comes after a resend', async () => {
    useFakeClock()
    const pending = []
    const later = () =>
      new Promise((resolve) => {
        pending.push(resolve)
      })
    const fetch = mockStatus(later, later, statusAnswer('sent'))
    mockFetch(json(200, { expires_in: 300, resend_in: 30 }))
    const wrapper = mountStep(CodeStep, { resendAt: Date.now() })
    await pass(1_000) // the first question is out, unanswered
    await wrapper.get('[data-test="resend"]').trigger('click')
    await settle()
    await pass(1_000) // the resend's first question is out too
    expect(fetch).toHaveBeenCalledTimes(2)
    pending[0](statusAnswer('delivered'))
    await settle()
    expect(stateOf(wrapper)).toBe('queued')
    setHidden(false) // still one question at a time: the resend's is out
    await settle()
    expect(fetch).toHaveBeenCalledTimes(2)
    pending[1](statusAnswer('sent'))
    await settle()
    expect(stateOf(wrapper)).toBe('sent')
  })

  it('does not stop on a 410 about the previous send that comes after a resend', async () => {
    useFakeClock()
    let late
    const fetch = mockStatus(
      () =>
        new Promise((resolve) => {
          late = resolve
        }),
      statusAnswer('sent'),
    )
    mockFetch(json(200, { expires_in: 300, resend_in: 30 }))
    const wrapper = mountStep(CodeStep, { resendAt: Date.now() })
    await pass(1_000)
    await wrapper.get('[data-test="resend"]').trigger('click')
    await settle()
    late(json(410, { error: 'session_expired', message: 'x', reason: 'expired' }))
    await settle()
    await pass(1_000)
    expect(fetch).toHaveBeenCalledTimes(2)
    expect(stateOf(wrapper)).toBe('sent')
  })

  it('stops asking once the session is closed, and no longer shows the status', async () => {
    useFakeClock()
    const { times } = timedStatus(() => statusAnswer('delayed'))
    const wrapper = mountStep(CodeStep, { expiresAt: Date.now() + 20_000 })
    await pass(20_000)
    expect(times).toEqual([1_000, 3_000, 7_000, 15_000])
    expect(wrapper.find('form').exists()).toBe(false)
    expect(wrapper.find('[data-delivery]').exists()).toBe(false)
    await pass(60_000)
    expect(times).toHaveLength(4)
  })

  it('leaves no timer and no listener behind once the screen is left', async () => {
    useFakeClock()
    const { times } = timedStatus(() => statusAnswer('queued'))
    const added = vi.spyOn(document, 'addEventListener')
    const removed = vi.spyOn(document, 'removeEventListener')
    const wrapper = mountStep()
    await pass(1_000)
    expect(times).toEqual([1_000])
    expect(vi.getTimerCount()).toBeGreaterThan(0)
    wrapper.unmount()
    expect(vi.getTimerCount()).toBe(0)
    const listeners = (spy) => spy.mock.calls.filter(([type]) => type === 'visibilitychange').map(([, fn]) => fn)
    expect(listeners(removed).sort()).toEqual(listeners(added).sort())
    setHidden(false)
    await pass(60_000)
    expect(times).toEqual([1_000])
  })

  it('drops an answer that comes after the screen was left', async () => {
    useFakeClock()
    let late
    const fetch = mockStatus(
      () =>
        new Promise((resolve) => {
          late = resolve
        }),
    )
    const wrapper = mountStep()
    await pass(1_000)
    expect(fetch).toHaveBeenCalledTimes(1)
    wrapper.unmount()
    late(statusAnswer('queued'))
    await settle()
    expect(vi.getTimerCount()).toBe(0)
  })

  it('is on the reset code screen and on the sign-up code screen too', async () => {
    useFakeClock()
    mockStatus(statusAnswer('bounced'))
    const reset = mountStep(ResetConfirmStep)
    const signup = mountStep(CodeStep, { flow: 'signup' })
    expect(stateOf(reset)).toBe('queued')
    await pass(1_000)
    expect(stateOf(reset)).toBe('bounced')
    expect(stateOf(signup)).toBe('bounced')
    expect(delivery(reset).text()).toBe('We could not deliver to this address.')
  })
})

describe('the words of each delivery state', () => {
  // 14:36 and 09:05 local time, whatever the time zone of the run.
  const afternoon = new Date(2030, 0, 1, 14, 36, 59).getTime() / 1000
  const morning = new Date(2030, 0, 1, 9, 5, 0).getTime() / 1000

  it.each([
    ['queued', 'Sending your code…'],
    ['sent', 'Sent'],
    ['delivered', 'Delivered to your mail provider at 14:36'],
    ['delayed', 'Your provider is delaying it. It may still arrive.'],
    ['bounced', 'We could not deliver to this address.'],
    ['rejected', 'We could not deliver to this address.'],
    [
      'suppressed',
      'We could not deliver to this address. Mail to this address is paused after earlier failures. Contact your administrator.',
    ],
    ['complained', 'You marked our mail as spam, so we will not send more to this address.'],
  ])('%s: "%s"', (state, text) => {
    const wrapper = mount(DeliveryStatus, { props: { state, at: afternoon } })
    expect(wrapper.text()).toBe(text)
    expect(wrapper.attributes('data-delivery')).toBe(state)
    expect(wrapper.attributes('role')).toBe('status')
  })

  it('has words of its own for every state the API can send (bounced and rejected share theirs)', () => {
    expect(DELIVERY_STATES).toHaveLength(8)
    const texts = DELIVERY_STATES.map((state) => deliveryText(state, afternoon))
    expect(texts.filter((text) => text === deliveryText('queued'))).toHaveLength(1)
    expect(new Set(texts).size).toBe(7)
  })

  it('gives the hour of a delivery with two digits, 24-hour', () => {
    expect(deliveryText('delivered', morning)).toBe('Delivered to your mail provider at 09:05')
    expect(deliveryText('delivered', new Date(2030, 0, 1, 0, 7).getTime() / 1000)).toBe(
      'Delivered to your mail provider at 00:07',
    )
  })

  it('says delivered without a time when the server gave none', () => {
    expect(deliveryText('delivered', null)).toBe('Delivered to your mail provider')
  })
})
