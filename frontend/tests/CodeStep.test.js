import { mount } from '@vue/test-utils'
import { describe, expect, it, vi } from 'vitest'
import CodeStep from '../src/components/CodeStep.vue'
import {
  alertText,
  enterCode,
  expectOneCallWhileBusy,
  json,
  mockFetch,
  pendingFetch,
  sentBody,
  settle,
  submit,
  useFakeClock,
} from './helpers.js'

function mountStep(props = {}) {
  const now = Date.now()
  return mount(CodeStep, {
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

async function typeCode(wrapper, code) {
  await wrapper.get('#code').setValue(code)
}

function paste(wrapper, text) {
  const event = new Event('paste', { bubbles: true, cancelable: true })
  event.clipboardData = { getData: (type) => (type === 'text' ? text : '') }
  wrapper.get('#code').element.dispatchEvent(event)
  return event
}

const resendButton = (wrapper) => wrapper.get('[data-test="resend"]')

describe('CodeStep', () => {
  it('says where the code went, with the address masked', () => {
    const wrapper = mountStep()
    expect(wrapper.get('#code-sent').text()).toBe('We sent a code to a***@example.com.')
    expect(wrapper.text()).not.toContain('alice@')
  })

  it('has one code field made for one-time codes, focused', () => {
    const wrapper = mountStep()
    const input = wrapper.get('#code')
    expect(wrapper.get('label[for="code"]').text()).toBe('6-digit code')
    expect(input.attributes('inputmode')).toBe('numeric')
    expect(input.attributes('autocomplete')).toBe('one-time-code')
    expect(input.attributes('maxlength')).toBe('6')
    expect(input.attributes('aria-describedby')).toBe('code-sent code-expiry')
    expect(wrapper.findAll('input')).toHaveLength(1)
    expect(document.activeElement).toBe(input.element)
  })

  it('follows the configured code length', async () => {
    const fetch = mockFetch(json(200, { verified: true, email: 'alice@example.com' }))
    const wrapper = mountStep({ codeLength: 8 })
    expect(wrapper.get('label[for="code"]').text()).toBe('8-digit code')
    expect(wrapper.get('#code').attributes('maxlength')).toBe('8')
    await enterCode(wrapper, '123456')
    expect(wrapper.get('#code-error').text()).toBe('Enter the 8-digit code from the email.')
    expect(fetch).not.toHaveBeenCalled()
    await enterCode(wrapper, '12345678')
    expect(sentBody(fetch)).toEqual({ session_id: 'sess_1', code: '12345678' })
  })

  it('takes a pasted code whole, whatever surrounds the digits', async () => {
    const wrapper = mountStep()
    await typeCode(wrapper, '9')
    const event = paste(wrapper, ' 123-456\n')
    await settle()
    expect(event.defaultPrevented).toBe(true)
    expect(wrapper.get('#code').element.value).toBe('123456')
    const fetch = mockFetch(json(200, { verified: true, email: 'alice@example.com' }))
    await submit(wrapper)
    expect(sentBody(fetch).code).toBe('123456')
  })

  it('keeps only digits when typing, full-width ones included', async () => {
    const wrapper = mountStep()
    await typeCode(wrapper, '12a３4 5')
    expect(wrapper.get('#code').element.value).toBe('12345')
  })

  it('asks for the whole code before calling the API', async () => {
    const fetch = mockFetch()
    const wrapper = mountStep()
    await enterCode(wrapper, '123')
    expect(wrapper.get('#code-error').text()).toBe('Enter the 6-digit code from the email.')
    expect(wrapper.get('#code').attributes('aria-invalid')).toBe('true')
    expect(wrapper.get('#code').attributes('aria-describedby')).toContain('code-error')
    expect(fetch).not.toHaveBeenCalled()
  })

  it('emits the verified email on success', async () => {
    const fetch = mockFetch(json(200, { verified: true, email: 'alice@example.com' }))
    const wrapper = mountStep()
    await enterCode(wrapper, '654321')
    expect(sentBody(fetch)).toEqual({ session_id: 'sess_1', code: '654321' })
    expect(wrapper.emitted('verified')).toEqual([[{ email: 'alice@example.com', token: '' }]])
  })

  it('emits the token with the email when the API sends one', async () => {
    mockFetch(json(200, { verified: true, email: 'alice@example.com', token: 'aGVh.Y2xh.c2ln', expires_in: 300 }))
    const wrapper = mountStep()
    await enterCode(wrapper, '654321')
    expect(wrapper.emitted('verified')).toEqual([[{ email: 'alice@example.com', token: 'aGVh.Y2xh.c2ln' }]])
  })

  it('shows it is checking and cannot be submitted twice', async () => {
    const pending = pendingFetch()
    const wrapper = mountStep()
    await expectOneCallWhileBusy(wrapper, pending, {
      fields: { '#code': '123456' },
      button: 'verify',
      busyText: 'Checking…',
      answer: json(200, { verified: true, email: 'alice@example.com' }),
      event: 'verified',
    })
  })

  it.each([
    [4, 'That code is not correct. You have 4 attempts left.'],
    [1, 'That code is not correct. You have 1 attempt left.'],
  ])('says a wrong code was wrong, with %i attempts left', async (left, message) => {
    mockFetch(json(401, { error: 'invalid_code', message: 'x', attempts_remaining: left }))
    const wrapper = mountStep()
    await enterCode(wrapper, '000000')
    expect(alertText(wrapper)).toBe(message)
    expect(wrapper.get('[data-test="alert"]').attributes('role')).toBe('alert')
    expect(wrapper.get('#code').element.value).toBe('')
    expect(document.activeElement).toBe(wrapper.get('#code').element)
    expect(wrapper.emitted('verified')).toBeUndefined()
  })

  it('closes the form when the last attempt was wrong', async () => {
    mockFetch(json(401, { error: 'invalid_code', message: 'x', attempts_remaining: 0 }))
    const wrapper = mountStep()
    await enterCode(wrapper, '000000')
    expect(alertText(wrapper)).toBe(
      'That code is not correct. No attempts are left. Sign in again to get a new code.',
    )
    expect(wrapper.find('#code').exists()).toBe(false)
    expect(document.activeElement).toBe(wrapper.get('[data-test="sign-in-again"]').element)
  })

  it.each([
    ['expired', 'This code has expired. Sign in again to get a new one.'],
    ['used', 'This code was already used. Sign in again to get a new one.'],
    ['too_many_attempts', 'Too many wrong codes. Sign in again to get a new one.'],
  ])('explains session_expired (%s) and offers to sign in again', async (reason, message) => {
    mockFetch(json(410, { error: 'session_expired', message: 'x', reason }))
    const wrapper = mountStep()
    await enterCode(wrapper)
    expect(alertText(wrapper)).toBe(message)
    expect(wrapper.find('form').exists()).toBe(false)
    expect(wrapper.find('[data-test="resend"]').exists()).toBe(false)
    const again = wrapper.get('[data-test="sign-in-again"]')
    expect(document.activeElement).toBe(again.element)
    await again.trigger('click')
    expect(wrapper.emitted('restart')).toEqual([[{ email: 'alice@example.com' }]])
  })

  it('explains a network failure and keeps the form', async () => {
    mockFetch(new TypeError('Failed to fetch'))
    const wrapper = mountStep()
    await enterCode(wrapper)
    expect(alertText(wrapper)).toBe('We could not reach the server. Check your connection and try again.')
    expect(wrapper.get('#code').element.value).toBe('123456')
  })

  it('counts down to expiry, then closes the form', async () => {
    useFakeClock()
    const wrapper = mountStep()
    const expiry = () => wrapper.get('[data-test="expiry"]').text()
    expect(expiry()).toBe('The code expires in 5:00.')
    await vi.advanceTimersByTimeAsync(1_000)
    expect(expiry()).toBe('The code expires in 4:59.')
    await vi.advanceTimersByTimeAsync(238_000)
    expect(expiry()).toBe('The code expires in 1:01.')
    await vi.advanceTimersByTimeAsync(61_000)
    expect(wrapper.find('form').exists()).toBe(false)
    expect(alertText(wrapper)).toBe('This code has expired. Sign in again to get a new one.')
  })

  it('keeps the countdown right after the tab slept', async () => {
    useFakeClock()
    const wrapper = mountStep()
    // The clock jumps ahead without any timer firing, as in a suspended tab.
    vi.setSystemTime(Date.now() + 120_000)
    document.dispatchEvent(new Event('visibilitychange'))
    await settle()
    expect(wrapper.get('[data-test="expiry"]').text()).toBe('The code expires in 3:00.')
  })

  it('offers "Resend code" only once resend_in has passed, with its own countdown', async () => {
    useFakeClock()
    const wrapper = mountStep()
    expect(resendButton(wrapper).attributes('disabled')).toBeDefined()
    expect(resendButton(wrapper).text()).toBe('Resend code in 0:30')
    await vi.advanceTimersByTimeAsync(29_000)
    expect(resendButton(wrapper).text()).toBe('Resend code in 0:01')
    expect(resendButton(wrapper).attributes('disabled')).toBeDefined()
    await vi.advanceTimersByTimeAsync(1_000)
    expect(resendButton(wrapper).text()).toBe('Resend code')
    expect(resendButton(wrapper).attributes('disabled')).toBeUndefined()
  })

  it('resends: new timers, an announcement, the old code cleared', async () => {
    useFakeClock()
    const fetch = mockFetch(json(200, { expires_in: 300, resend_in: 60 }))
    const wrapper = mountStep({ resendAt: Date.now() })
    await vi.advanceTimersByTimeAsync(100_000)
    await typeCode(wrapper, '111')
    await resendButton(wrapper).trigger('click')
    await settle()
    expect(sentBody(fetch)).toEqual({ session_id: 'sess_1' })
    expect(wrapper.get('[data-test="status"]').attributes('role')).toBe('status')
    expect(wrapper.get('[data-test="status"]').text()).toBe(
      'We sent a new code to a***@example.com. The previous code no longer works.',
    )
    expect(wrapper.get('[data-test="expiry"]').text()).toBe('The code expires in 5:00.')
    expect(resendButton(wrapper).text()).toBe('Resend code in 1:00')
    expect(wrapper.get('#code').element.value).toBe('')
    expect(document.activeElement).toBe(wrapper.get('#code').element)
  })

  it('says when a resend may be tried after rate_limited', async () => {
    useFakeClock()
    mockFetch(json(429, { error: 'rate_limited', message: 'x', retry_after: 125 }, { 'Retry-After': '125' }))
    const wrapper = mountStep({ resendAt: Date.now() })
    await resendButton(wrapper).trigger('click')
    await settle()
    expect(alertText(wrapper)).toBe('Too many codes were requested. You can ask for a new one in 3 minutes.')
    expect(resendButton(wrapper).text()).toBe('Resend code in 2:05')
    expect(resendButton(wrapper).attributes('disabled')).toBeDefined()
    expect(wrapper.find('#code').exists()).toBe(true)
  })

  it('closes when a resend finds the session over', async () => {
    mockFetch(json(410, { error: 'session_expired', message: 'x', reason: 'expired' }))
    const wrapper = mountStep({ resendAt: Date.now() })
    await resendButton(wrapper).trigger('click')
    await settle()
    expect(alertText(wrapper)).toBe('This code has expired. Sign in again to get a new one.')
    expect(wrapper.find('form').exists()).toBe(false)
  })

  it('"Use another account" goes back to step 1 with empty fields', async () => {
    const wrapper = mountStep()
    await wrapper.get('[data-test="other-account"]').trigger('click')
    expect(wrapper.emitted('restart')).toEqual([[{ email: '' }]])
  })
})
