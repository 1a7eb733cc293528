import { mount } from '@vue/test-utils'
import { describe, expect, it, vi } from 'vitest'
import App from '../src/App.vue'
import ResetConfirmStep from '../src/components/ResetConfirmStep.vue'
import ResetDoneStep from '../src/components/ResetDoneStep.vue'
import ResetRequestStep from '../src/components/ResetRequestStep.vue'
import { PASSWORD_RULE_TEXT } from '../src/lib/messages.js'
import {
  alertText,
  callsOf,
  expectOneCallWhileBusy,
  json,
  mockFetch,
  pendingFetch,
  screenOf,
  sentBody,
  settle,
  submit,
  submitWith,
  useFakeClock,
} from './helpers.js'

const RESET_STARTED = () => json(202, { session_id: 'pr_1', expires_in: 900, resend_in: 30 })
const RESET_DONE = () => json(200, { reset: true })

function mountConfirm(props = {}) {
  const now = Date.now()
  return mount(ResetConfirmStep, {
    props: { email: 'demo@example.com', sessionId: 'pr_1', expiresAt: now + 900_000, resendAt: now + 30_000, ...props },
    attachTo: document.body,
  })
}

function confirm(wrapper, code = '123456', password = 'a new long password') {
  return submitWith(wrapper, { '#code': code, '#new-password': password })
}

/** The App at the reset's code screen for demo@example.com (through the sign-in screen's link). */
async function openResetConfirm() {
  const wrapper = mount(App, { attachTo: document.body })
  await wrapper.get('#email').setValue('demo@example.com')
  await wrapper.get('[data-test="forgot"]').trigger('click')
  await submit(wrapper)
  return wrapper
}

describe('ResetRequestStep', () => {
  it('asks for the email, focusing its heading, and never says whether an account exists', () => {
    const wrapper = mount(ResetRequestStep, { props: { initialEmail: 'demo@example.com' }, attachTo: document.body })
    expect(wrapper.attributes('data-screen')).toBe('reset-request')
    expect(wrapper.get('h1').text()).toBe('Reset your password')
    expect(document.activeElement).toBe(wrapper.get('h1').element)
    expect(wrapper.get('label[for="email"]').text()).toBe('Email')
    expect(wrapper.get('#email').element.value).toBe('demo@example.com')
    expect(wrapper.text()).toContain('If an account exists for it, we will email you a code')
    expect(wrapper.get('[data-test="submit"]').text()).toBe('Send code')
  })

  it('checks the address before calling the API', async () => {
    const fetch = mockFetch()
    const wrapper = mount(ResetRequestStep, { attachTo: document.body })
    await submit(wrapper)
    expect(wrapper.get('#email-error').text()).toBe('Enter your email address.')
    expect(document.activeElement).toBe(wrapper.get('#email').element)
    await wrapper.get('#email').setValue('demo@localhost')
    await wrapper.get('form').trigger('submit')
    expect(wrapper.get('#email-error').text()).toContain('valid email address')
    expect(fetch).not.toHaveBeenCalled()
  })

  it('posts the trimmed email to /password/reset and reports the session', async () => {
    const fetch = mockFetch(RESET_STARTED)
    const wrapper = mount(ResetRequestStep, { attachTo: document.body })
    await wrapper.get('#email').setValue('  demo@example.com ')
    await submit(wrapper)
    expect(callsOf(fetch)).toEqual(['POST /password/reset'])
    expect(sentBody(fetch)).toEqual({ email: 'demo@example.com' })
    expect(wrapper.emitted('started')).toEqual([[{ email: 'demo@example.com', sessionId: 'pr_1', expiresIn: 900, resendIn: 30 }]])
  })

  it('shows it is sending and cannot be submitted twice', async () => {
    const { fetch, resolve } = pendingFetch()
    const wrapper = mount(ResetRequestStep, { props: { initialEmail: 'demo@example.com' }, attachTo: document.body })
    await wrapper.get('form').trigger('submit')
    await wrapper.get('form').trigger('submit')
    expect(wrapper.get('[data-test="submit"]').text()).toBe('Sending…')
    expect(fetch).toHaveBeenCalledTimes(1)
    resolve(RESET_STARTED())
    await settle()
    expect(wrapper.emitted('started')).toHaveLength(1)
  })

  it('holds the button after rate_limited; another address is let through', async () => {
    useFakeClock()
    const fetch = mockFetch(json(429, { error: 'rate_limited', message: 'x', retry_after: 90 }), RESET_STARTED)
    const wrapper = mount(ResetRequestStep, { props: { initialEmail: 'demo@example.com' }, attachTo: document.body })
    await submit(wrapper)
    expect(alertText(wrapper)).toBe('Too many codes were requested. Try again in 2 minutes.')
    expect(wrapper.get('[data-test="submit"]').text()).toBe('Try again in 1:30')
    await wrapper.get('form').trigger('submit')
    expect(fetch).toHaveBeenCalledTimes(1)
    await wrapper.get('#email').setValue('other@example.com')
    await submit(wrapper)
    expect(fetch).toHaveBeenCalledTimes(2)
  })

  it('explains invalid_request and a network failure', async () => {
    mockFetch(json(400, { error: 'invalid_request', message: "The field 'email' is not valid." }), new TypeError('Failed to fetch'))
    const wrapper = mount(ResetRequestStep, { props: { initialEmail: 'demo@example.com' }, attachTo: document.body })
    await submit(wrapper)
    expect(alertText(wrapper)).toBe("The field 'email' is not valid.")
    await submit(wrapper)
    expect(alertText(wrapper)).toBe('We could not reach the server. Check your connection and try again.')
  })
})

describe('ResetConfirmStep', () => {
  it('has the code and a new password, labelled, with the code focused', () => {
    const wrapper = mountConfirm()
    expect(wrapper.attributes('data-screen')).toBe('reset-confirm')
    expect(wrapper.attributes('aria-labelledby')).toBe('reset-confirm-heading')
    expect(wrapper.get('h1').text()).toBe('Choose a new password')
    expect(wrapper.get('label[for="code"]').text()).toBe('6-digit code')
    expect(wrapper.get('#code').attributes('autocomplete')).toBe('one-time-code')
    expect(wrapper.get('#code').attributes('aria-describedby')).toBe('code-sent code-expiry')
    expect(wrapper.get('label[for="new-password"]').text()).toBe('New password')
    expect(wrapper.get('#new-password').attributes('autocomplete')).toBe('new-password')
    expect(wrapper.get('#new-password').attributes('type')).toBe('password')
    expect(wrapper.get('button[aria-controls="new-password"]').text()).toBe('Show password')
    expect(wrapper.get('[data-test="submit"]').text()).toBe('Change password')
    expect(document.activeElement).toBe(wrapper.get('#code').element)
  })

  it('never claims the address has an account', () => {
    const wrapper = mountConfirm()
    expect(wrapper.get('#code-sent').text()).toBe(
      'If an account exists for d***@example.com, we sent a code to it. Enter the code and your new password.',
    )
    expect(wrapper.text()).not.toMatch(/We sent a code to|your account/)
  })

  it('checks both fields before calling the API', async () => {
    const fetch = mockFetch()
    const wrapper = mountConfirm()
    await submit(wrapper)
    expect(wrapper.get('#code-error').text()).toBe('Enter the 6-digit code from the email.')
    expect(wrapper.get('#new-password-error').text()).toBe('Choose a new password.')
    expect(document.activeElement).toBe(wrapper.get('#code').element)
    await wrapper.get('#code').setValue('123456')
    await wrapper.get('form').trigger('submit')
    expect(wrapper.find('#code-error').exists()).toBe(false)
    expect(document.activeElement).toBe(wrapper.get('#new-password').element)
    expect(fetch).not.toHaveBeenCalled()
  })

  it('posts the session, the code and the new password, then reports it done', async () => {
    const fetch = mockFetch(RESET_DONE)
    const wrapper = mountConfirm()
    await confirm(wrapper)
    expect(callsOf(fetch)).toEqual(['POST /password/reset/confirm'])
    expect(sentBody(fetch)).toEqual({ session_id: 'pr_1', code: '123456', new_password: 'a new long password' })
    expect(wrapper.emitted('done')).toEqual([[{ email: 'demo@example.com' }]])
  })

  it('shows it is working and cannot be submitted twice', async () => {
    const pending = pendingFetch()
    const wrapper = mountConfirm()
    await expectOneCallWhileBusy(wrapper, pending, {
      fields: { '#code': '123456', '#new-password': 'a new long password' },
      busyText: 'Changing your password…',
      answer: RESET_DONE(),
      event: 'done',
    })
  })

  it.each(['too_short', 'too_long', 'common', 'matches_email'])(
    'keeps the code after weak_password (%s), says why at the field, and takes the same code again',
    async (rule) => {
      const fetch = mockFetch(json(400, { error: 'weak_password', message: '', rule }), RESET_DONE)
      const wrapper = mountConfirm()
      await confirm(wrapper, '123456', 'password')
      const field = wrapper.get('#new-password')
      expect(wrapper.get('#new-password-error').text()).toBe(PASSWORD_RULE_TEXT[rule])
      expect(field.attributes('aria-invalid')).toBe('true')
      expect(field.attributes('aria-describedby')).toBe('new-password-error')
      expect(document.activeElement).toBe(field.element)
      expect(wrapper.get('#code').element.value).toBe('123456')
      expect(alertText(wrapper)).toBe('')
      expect(wrapper.emitted('done')).toBeUndefined()

      await field.setValue('a much better passphrase')
      expect(wrapper.find('#new-password-error').exists()).toBe(false)
      await submit(wrapper)
      expect(sentBody(fetch, 1)).toEqual({ session_id: 'pr_1', code: '123456', new_password: 'a much better passphrase' })
      expect(wrapper.emitted('done')).toHaveLength(1)
    },
  )

  it("shows the server's plain words for a weak password", async () => {
    mockFetch(json(400, { error: 'weak_password', message: 'Use at least 12 characters.', rule: 'too_short' }))
    const wrapper = mountConfirm()
    await confirm(wrapper, '123456', 'short')
    expect(wrapper.get('#new-password-error').text()).toBe('Use at least 12 characters.')
  })

  it('says a wrong code was wrong, clears it and keeps the new password', async () => {
    mockFetch(json(401, { error: 'invalid_code', message: 'x', attempts_remaining: 2 }))
    const wrapper = mountConfirm()
    await confirm(wrapper, '000000')
    expect(alertText(wrapper)).toBe('That code is not correct. You have 2 attempts left.')
    expect(wrapper.get('#code').element.value).toBe('')
    expect(wrapper.get('#new-password').element.value).toBe('a new long password')
    expect(document.activeElement).toBe(wrapper.get('#code').element)
  })

  it('closes after the last wrong attempt, offering to start again with the address', async () => {
    mockFetch(json(401, { error: 'invalid_code', message: 'x', attempts_remaining: 0 }))
    const wrapper = mountConfirm()
    await confirm(wrapper, '000000')
    expect(alertText(wrapper)).toBe('That code is not correct. No attempts are left. Start again to get a new code.')
    expect(wrapper.find('form').exists()).toBe(false)
    const again = wrapper.get('[data-test="start-over"]')
    expect(document.activeElement).toBe(again.element)
    await again.trigger('click')
    expect(wrapper.emitted('restart')).toEqual([[{ email: 'demo@example.com' }]])
  })

  it.each([
    ['expired', 'This code has expired. Start again to get a new one.'],
    ['used', 'This code was already used. Start again to get a new one.'],
    ['too_many_attempts', 'Too many wrong codes. Start again to get a new one.'],
  ])('closes on session_expired (%s)', async (reason, message) => {
    mockFetch(json(410, { error: 'session_expired', message: 'x', reason }))
    const wrapper = mountConfirm()
    await confirm(wrapper)
    expect(alertText(wrapper)).toBe(message)
    expect(wrapper.find('#new-password').exists()).toBe(false)
    expect(wrapper.find('[data-test="resend"]').exists()).toBe(false)
  })

  it('closes when the code runs out on its own clock', async () => {
    useFakeClock()
    const wrapper = mountConfirm()
    expect(wrapper.get('[data-test="expiry"]').text()).toBe('The code expires in 15:00.')
    await vi.advanceTimersByTimeAsync(900_000)
    expect(wrapper.find('form').exists()).toBe(false)
    expect(alertText(wrapper)).toBe('This code has expired. Start again to get a new one.')
  })

  it('explains rate_limited and invalid_request on submit, and keeps the form', async () => {
    mockFetch(
      json(429, { error: 'rate_limited', message: 'x', retry_after: 60 }),
      json(400, { error: 'invalid_request', message: "The field 'code' must be digits." }),
    )
    const wrapper = mountConfirm()
    await confirm(wrapper)
    expect(alertText(wrapper)).toBe('Too many codes were requested. You can ask for a new one in 1 minute.')
    await submit(wrapper)
    expect(alertText(wrapper)).toBe("The field 'code' must be digits.")
    expect(wrapper.find('form').exists()).toBe(true)
  })

  it('resends with POST /otp/resend, without claiming an account exists', async () => {
    useFakeClock()
    const fetch = mockFetch(json(200, { expires_in: 900, resend_in: 60 }))
    const wrapper = mountConfirm({ resendAt: Date.now() })
    await wrapper.get('#code').setValue('111')
    await wrapper.get('[data-test="resend"]').trigger('click')
    await settle()
    expect(callsOf(fetch)).toEqual(['POST /otp/resend'])
    expect(sentBody(fetch)).toEqual({ session_id: 'pr_1' })
    expect(wrapper.get('[data-test="status"]').text()).toBe(
      'If an account exists for d***@example.com, we sent it a new code. The previous code no longer works.',
    )
    expect(wrapper.get('#code').element.value).toBe('')
    expect(wrapper.get('[data-test="resend"]').text()).toBe('Resend code in 1:00')
    expect(document.activeElement).toBe(wrapper.get('#code').element)
  })

  it('holds "Resend code" after a rate-limited resend', async () => {
    useFakeClock()
    mockFetch(json(429, { error: 'rate_limited', message: 'x' }, { 'Retry-After': '45' }))
    const wrapper = mountConfirm({ resendAt: Date.now() })
    await wrapper.get('[data-test="resend"]').trigger('click')
    await settle()
    expect(alertText(wrapper)).toBe('Too many codes were requested. You can ask for a new one in 45 seconds.')
    expect(wrapper.get('[data-test="resend"]').text()).toBe('Resend code in 0:45')
    expect(wrapper.get('[data-test="resend"]').attributes('disabled')).toBeDefined()
  })

  it('closes when a resend finds the session over (410)', async () => {
    mockFetch(json(410, { error: 'session_expired', message: 'x', reason: 'used' }))
    const wrapper = mountConfirm({ resendAt: Date.now() })
    await wrapper.get('[data-test="resend"]').trigger('click')
    await settle()
    expect(alertText(wrapper)).toBe('This code was already used. Start again to get a new one.')
    expect(wrapper.find('form').exists()).toBe(false)
  })
})

describe('ResetDoneStep', () => {
  it('says the password was changed, focusing its heading, and offers to sign in', async () => {
    const wrapper = mount(ResetDoneStep, { props: { email: 'demo@example.com' }, attachTo: document.body })
    expect(wrapper.attributes('data-screen')).toBe('reset-done')
    const heading = wrapper.get('h1')
    expect(heading.text()).toBe('Your password was changed')
    expect(document.activeElement).toBe(heading.element)
    await wrapper.get('[data-test="sign-in"]').trigger('click')
    expect(wrapper.emitted('sign-in')).toEqual([[{ email: 'demo@example.com' }]])
  })
})

describe('App: resetting a password', () => {
  it('goes from sign-in to the reset, then back to sign-in with the email filled in', async () => {
    const fetch = mockFetch(RESET_STARTED, RESET_DONE)
    const wrapper = mount(App, { attachTo: document.body })
    const forgot = wrapper.get('[data-test="forgot"]')
    expect(forgot.text()).toBe('Forgot your password?')
    await wrapper.get('#email').setValue('demo@example.com')
    await forgot.trigger('click')
    expect(screenOf(wrapper)).toBe('reset-request')
    expect(document.title).toBe('Reset your password · simple-otp')
    expect(wrapper.get('#email').element.value).toBe('demo@example.com')

    await submit(wrapper)
    expect(screenOf(wrapper)).toBe('reset-confirm')
    expect(document.title).toBe('Choose a new password · simple-otp')

    await confirm(wrapper)
    expect(screenOf(wrapper)).toBe('reset-done')
    expect(document.title).toBe('Password changed · simple-otp')
    expect(document.activeElement).toBe(wrapper.get('h1').element)

    await wrapper.get('[data-test="sign-in"]').trigger('click')
    expect(screenOf(wrapper)).toBe('signin')
    expect(wrapper.get('#email').element.value).toBe('demo@example.com')
    expect(wrapper.get('#password').element.value).toBe('')
    expect(document.activeElement).toBe(wrapper.get('#password').element)
    expect(callsOf(fetch)).toEqual(['POST /password/reset', 'POST /password/reset/confirm'])
  })

  it('"Start again" after a closed reset returns to the reset request with the address', async () => {
    mockFetch(RESET_STARTED, json(410, { error: 'session_expired', message: 'x', reason: 'too_many_attempts' }))
    const wrapper = await openResetConfirm()
    await confirm(wrapper)
    await wrapper.get('[data-test="start-over"]').trigger('click')
    expect(screenOf(wrapper)).toBe('reset-request')
    expect(wrapper.get('#email').element.value).toBe('demo@example.com')
  })

  it('"Back to sign in" from either reset screen keeps the address', async () => {
    mockFetch(RESET_STARTED)
    const wrapper = await openResetConfirm()
    await wrapper.get('[data-test="back-to-sign-in"]').trigger('click')
    expect(screenOf(wrapper)).toBe('signin')
    expect(wrapper.get('#email').element.value).toBe('demo@example.com')
    await wrapper.get('[data-test="forgot"]').trigger('click')
    await wrapper.get('#email').setValue('other@example.com')
    await wrapper.get('[data-test="back-to-sign-in"]').trigger('click')
    expect(wrapper.get('#email').element.value).toBe('other@example.com')
  })
})
