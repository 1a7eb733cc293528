import { mount } from '@vue/test-utils'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import App from '../src/App.vue'
import SignInStep from '../src/components/SignInStep.vue'
import SignUpStep from '../src/components/SignUpStep.vue'
import { deviceKey } from '../src/lib/devices.js'
import { PASSWORD_RULE_TEXT } from '../src/lib/messages.js'
import {
  alertText,
  callsOf,
  enterCode,
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

const DEVICE = 'dT1_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'
const TOKEN = 'eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhY2N0XzEifQ.c2lnbmF0dXJlLWJ5dGVz'
const SIGNUP_STARTED = () => json(202, { session_id: 'su_1', expires_in: 600, resend_in: 30 })
const SIGNUP_VERIFIED = () =>
  json(201, {
    verified: true,
    email: 'new@example.com',
    token: TOKEN,
    token_type: 'Bearer',
    expires_in: 300,
    device_token: DEVICE,
  })

function mountStep(props = {}) {
  return mount(SignUpStep, { props, attachTo: document.body })
}

function fillAndSubmit(wrapper, email = 'new@example.com', password = 'correct horse battery') {
  return submitWith(wrapper, { '#email': email, '#new-password': password })
}

/** The App, sign-up on, at the sign-up screen (opened from the sign-in screen's link). */
async function openSignUp(props = {}) {
  const wrapper = mount(App, { props: { signup: 'true', ...props }, attachTo: document.body })
  await wrapper.get('[data-test="create-account"]').trigger('click')
  return wrapper
}

beforeEach(() => {
  window.localStorage.clear()
})

describe('"Create an account" on the sign-in screen', () => {
  it('is there only when sign-up is on; "Forgot your password?" always is', () => {
    const off = mount(SignInStep, { attachTo: document.body })
    expect(off.find('[data-test="create-account"]').exists()).toBe(false)
    expect(off.get('[data-test="forgot"]').text()).toBe('Forgot your password?')
    off.unmount()
    const on = mount(SignInStep, { props: { signupEnabled: true }, attachTo: document.body })
    const link = on.get('[data-test="create-account"]')
    expect(link.text()).toBe('Create an account')
    expect(link.attributes('type')).toBe('button')
  })

  it('comes after the sign-in button, so the keyboard order of signing in is unchanged', () => {
    const wrapper = mount(SignInStep, { props: { signupEnabled: true }, attachTo: document.body })
    const order = wrapper.findAll('input, button').map((el) => el.attributes('data-test') || el.attributes('id') || el.text())
    expect(order).toEqual(['email', 'password', 'password-toggle', 'submit', 'forgot', 'create-account'])
  })

  it('follows VITE_SIGNUP when the build fixes it, without asking the server', async () => {
    const fetch = mockFetch()
    const on = mount(App, { props: { signup: 'true' }, attachTo: document.body })
    await settle()
    expect(on.find('[data-test="create-account"]').exists()).toBe(true)
    on.unmount()
    const off = mount(App, { props: { signup: 'false' }, attachTo: document.body })
    await settle()
    expect(off.find('[data-test="create-account"]').exists()).toBe(false)
    expect(fetch).not.toHaveBeenCalled()
  })

  it('asks GET /config otherwise, and shows the link when the server says sign-up is on', async () => {
    const fetch = mockFetch(json(200, { signup_enabled: true }))
    const wrapper = mount(App, { props: { signup: '' }, attachTo: document.body })
    expect(wrapper.find('[data-test="create-account"]').exists()).toBe(false)
    await settle()
    expect(callsOf(fetch)).toEqual(['GET /config'])
    expect(wrapper.find('[data-test="create-account"]').exists()).toBe(true)
  })

  it.each([
    ['off', () => json(200, { signup_enabled: false })],
    ['a 404', () => json(404, { error: 'not_found', message: 'x' })],
    ['a 500 page', () => new Response('<h1>oops</h1>', { status: 500 })],
    ['no network', () => new TypeError('Failed to fetch')],
    ['a string "true"', () => json(200, { signup_enabled: 'true' })],
  ])('hides the link when /config says %s', async (_, answer) => {
    const fetch = mockFetch(answer)
    const wrapper = mount(App, { props: { signup: '' }, attachTo: document.body })
    await settle()
    expect(fetch).toHaveBeenCalledOnce()
    expect(wrapper.find('[data-test="create-account"]').exists()).toBe(false)
    expect(wrapper.get('h1').text()).toBe('Sign in')
    expect(alertText(wrapper)).toBe('')
  })
})

describe('SignUpStep', () => {
  it('has an email and a new password, labelled, and moves the focus to its heading', () => {
    const wrapper = mountStep()
    expect(wrapper.attributes('data-screen')).toBe('signup')
    const heading = wrapper.get('h1')
    expect(heading.text()).toBe('Create an account')
    expect(document.activeElement).toBe(heading.element)
    expect(wrapper.get('label[for="email"]').text()).toBe('Email')
    expect(wrapper.get('#email').attributes('autocomplete')).toBe('username')
    expect(wrapper.get('label[for="new-password"]').text()).toBe('Password')
    const password = wrapper.get('#new-password')
    expect(password.attributes('type')).toBe('password')
    expect(password.attributes('autocomplete')).toBe('new-password')
    expect(wrapper.get('[data-test="submit"]').text()).toBe('Create account')
  })

  it('prefills the email typed on the sign-in screen', () => {
    const wrapper = mountStep({ initialEmail: 'new@example.com' })
    expect(wrapper.get('#email').element.value).toBe('new@example.com')
  })

  it('shows and hides the new password with a real button whose name follows', async () => {
    const wrapper = mountStep()
    const toggle = wrapper.get('button[aria-controls="new-password"]')
    expect(toggle.attributes('type')).toBe('button')
    expect(toggle.text()).toBe('Show password')
    await toggle.trigger('click')
    expect(wrapper.get('#new-password').attributes('type')).toBe('text')
    expect(toggle.text()).toBe('Hide password')
  })

  it('checks the fields before calling the API', async () => {
    const fetch = mockFetch()
    const wrapper = mountStep()
    await submit(wrapper)
    expect(wrapper.get('#email-error').text()).toBe('Enter your email address.')
    expect(wrapper.get('#new-password-error').text()).toBe('Choose a password.')
    expect(document.activeElement).toBe(wrapper.get('#email').element)
    await fillAndSubmit(wrapper, 'not an address', 'x')
    expect(wrapper.get('#email-error').text()).toContain('valid email address')
    await fillAndSubmit(wrapper, 'new@example.com', 'x'.repeat(1025))
    expect(wrapper.get('#new-password-error').text()).toBe('The password can be at most 1024 characters.')
    expect(document.activeElement).toBe(wrapper.get('#new-password').element)
    expect(fetch).not.toHaveBeenCalled()
  })

  it('counts the password in characters, as the server does, not in UTF-16 units', async () => {
    const fetch = mockFetch(SIGNUP_STARTED)
    const wrapper = mountStep()
    const emoji = '🔑'.repeat(1024) // 2048 UTF-16 units, 1024 characters
    await fillAndSubmit(wrapper, 'new@example.com', emoji)
    expect(wrapper.find('#new-password-error').exists()).toBe(false)
    expect(sentBody(fetch).password).toBe(emoji)
    await fillAndSubmit(wrapper, 'new@example.com', `${emoji}x`)
    expect(wrapper.get('#new-password-error').text()).toBe('The password can be at most 1024 characters.')
    expect(fetch).toHaveBeenCalledTimes(1)
  })

  it('posts the trimmed email and the password to /signup and reports the session', async () => {
    const fetch = mockFetch(SIGNUP_STARTED)
    const wrapper = mountStep()
    await fillAndSubmit(wrapper, ' new@example.com  ')
    expect(callsOf(fetch)).toEqual(['POST /signup'])
    expect(sentBody(fetch)).toEqual({ email: 'new@example.com', password: 'correct horse battery' })
    expect(wrapper.emitted('started')).toEqual([[{ email: 'new@example.com', sessionId: 'su_1', expiresIn: 600, resendIn: 30 }]])
  })

  it('shows it is working and cannot be submitted twice', async () => {
    const pending = pendingFetch()
    const wrapper = mountStep()
    await expectOneCallWhileBusy(wrapper, pending, {
      fields: { '#email': 'new@example.com', '#new-password': 'correct horse battery' },
      busyText: 'Creating your account…',
      answer: SIGNUP_STARTED(),
      event: 'started',
    })
  })

  it.each(['too_short', 'too_long', 'common', 'matches_email'])(
    'says what is wrong with a weak password (%s) next to the field',
    async (rule) => {
      mockFetch(json(400, { error: 'weak_password', message: '', rule }))
      const wrapper = mountStep()
      await fillAndSubmit(wrapper)
      const field = wrapper.get('#new-password')
      expect(wrapper.get('#new-password-error').text()).toBe(PASSWORD_RULE_TEXT[rule])
      expect(wrapper.get('#new-password-error').attributes('role')).toBe('alert')
      expect(field.attributes('aria-invalid')).toBe('true')
      expect(field.attributes('aria-describedby')).toBe('new-password-error')
      expect(document.activeElement).toBe(field.element)
      expect(alertText(wrapper)).toBe('')
      expect(wrapper.emitted('started')).toBeUndefined()
    },
  )

  it("uses the server's own words for a weak password when they are plain text, until the password changes", async () => {
    mockFetch(json(400, { error: 'weak_password', message: 'Use at least 12 characters.', rule: 'too_short' }))
    const wrapper = mountStep()
    await fillAndSubmit(wrapper, 'new@example.com', 'short')
    expect(wrapper.get('#new-password-error').text()).toBe('Use at least 12 characters.')
    await wrapper.get('#new-password').setValue('a much longer password')
    expect(wrapper.find('#new-password-error').exists()).toBe(false)
    expect(wrapper.get('#new-password').attributes('aria-invalid')).toBe('false')
  })

  it.each([
    ['signup_disabled', 'New accounts are closed.'],
    ['signup_not_allowed', 'Only addresses at example.com can sign up.'],
  ])('shows the message of 403 %s in the alert', async (code, message) => {
    mockFetch(json(403, { error: code, message }))
    const wrapper = mountStep()
    await fillAndSubmit(wrapper)
    expect(alertText(wrapper)).toBe(message)
    expect(wrapper.find('#new-password-error').exists()).toBe(false)
    expect(wrapper.emitted('started')).toBeUndefined()
  })

  it('shows the message of 400 invalid_request', async () => {
    mockFetch(json(400, { error: 'invalid_request', message: "The field 'password' must be a string." }))
    const wrapper = mountStep()
    await fillAndSubmit(wrapper)
    expect(alertText(wrapper)).toBe("The field 'password' must be a string.")
  })

  it('holds the button after rate_limited, until the retry time', async () => {
    useFakeClock()
    const fetch = mockFetch(json(429, { error: 'rate_limited', message: 'x' }, { 'Retry-After': '20' }), SIGNUP_STARTED)
    const wrapper = mountStep()
    await fillAndSubmit(wrapper)
    expect(alertText(wrapper)).toBe('Too many codes were requested. Try again in 20 seconds.')
    expect(wrapper.get('[data-test="submit"]').text()).toBe('Try again in 0:20')
    await wrapper.get('form').trigger('submit')
    expect(fetch).toHaveBeenCalledTimes(1)
    await vi.advanceTimersByTimeAsync(20_000)
    expect(wrapper.get('[data-test="submit"]').text()).toBe('Create account')
    await submit(wrapper)
    expect(fetch).toHaveBeenCalledTimes(2)
  })

  it('"Back to sign in" keeps what was typed in the email', async () => {
    const wrapper = mountStep()
    await wrapper.get('#email').setValue(' new@example.com ')
    await wrapper.get('[data-test="back-to-sign-in"]').trigger('click')
    expect(wrapper.emitted('sign-in')).toEqual([[{ email: 'new@example.com' }]])
  })
})

describe('App: creating an account', () => {
  it('goes from sign-in to sign-up to the code, then signs the person in', async () => {
    const fetch = mockFetch(
      SIGNUP_STARTED,
      json(401, { error: 'invalid_code', message: 'x', attempts_remaining: 4 }),
      SIGNUP_VERIFIED,
    )
    const wrapper = mount(App, { props: { signup: 'true' }, attachTo: document.body })
    await wrapper.get('#email').setValue('new@example.com')
    await wrapper.get('[data-test="create-account"]').trigger('click')
    expect(screenOf(wrapper)).toBe('signup')
    expect(document.title).toBe('Create an account · simple-otp')
    expect(wrapper.get('#email').element.value).toBe('new@example.com')

    await fillAndSubmit(wrapper)
    expect(screenOf(wrapper)).toBe('code')
    expect(wrapper.get('[data-screen="code"]').attributes('data-flow')).toBe('signup')
    expect(wrapper.get('h1').text()).toBe('Confirm your email address')
    expect(wrapper.get('#code-sent').text()).toBe(
      'We sent a code to n***@example.com. Enter it to confirm the address and create your account.',
    )
    expect(document.title).toBe('Confirm your email address · simple-otp')
    expect(document.activeElement).toBe(wrapper.get('#code').element)

    await enterCode(wrapper, '000000')
    expect(alertText(wrapper)).toBe('That code is not correct. You have 4 attempts left.')
    expect(wrapper.get('#code').element.value).toBe('')

    await enterCode(wrapper, '123456')
    expect(screenOf(wrapper)).toBe('verified')
    expect(wrapper.get('[data-test="verified-email"]').text()).toBe('new@example.com')
    expect(document.activeElement).toBe(wrapper.get('h1').element)
    expect(callsOf(fetch)).toEqual(['POST /signup', 'POST /signup/verify', 'POST /signup/verify'])
    expect(sentBody(fetch, 2)).toEqual({ session_id: 'su_1', code: '123456' })
    expect(window.localStorage.getItem(deviceKey('new@example.com'))).toBe(DEVICE)
  })

  it('hands the token to the app after sign-up, as after a sign-in', async () => {
    const submitted = []
    vi.spyOn(HTMLFormElement.prototype, 'submit').mockImplementation(function submit() {
      submitted.push(this)
    })
    window.history.replaceState(null, '', '/?state=Xq3_-bT0kZ9yLw2vPn8rAe5sHc1uDj4f')
    try {
      mockFetch(SIGNUP_STARTED, SIGNUP_VERIFIED)
      const wrapper = await openSignUp({ returnUrl: 'http://127.0.0.1:8081/callback' })
      await fillAndSubmit(wrapper)
      await enterCode(wrapper)
      expect(screenOf(wrapper)).toBe('handover')
      expect(submitted).toHaveLength(1)
      const fields = Object.fromEntries(new FormData(submitted[0]))
      expect(fields).toEqual({ token: TOKEN, state: 'Xq3_-bT0kZ9yLw2vPn8rAe5sHc1uDj4f' })
      expect(submitted[0].getAttribute('action')).toBe('http://127.0.0.1:8081/callback')
    } finally {
      window.history.replaceState(null, '', '/')
    }
  })

  it('resends the sign-up code with POST /otp/resend', async () => {
    useFakeClock()
    const fetch = mockFetch(SIGNUP_STARTED, json(200, { expires_in: 600, resend_in: 60 }))
    const wrapper = await openSignUp()
    await fillAndSubmit(wrapper)
    await vi.advanceTimersByTimeAsync(30_000)
    await wrapper.get('[data-test="resend"]').trigger('click')
    await settle()
    expect(callsOf(fetch)).toEqual(['POST /signup', 'POST /otp/resend'])
    expect(sentBody(fetch, 1)).toEqual({ session_id: 'su_1' })
    expect(wrapper.get('[data-test="status"]').text()).toBe(
      'We sent a new code to n***@example.com. The previous code no longer works.',
    )
    expect(wrapper.get('[data-test="resend"]').text()).toBe('Resend code in 1:00')
  })

  it('says an account already exists (409), and offers to sign in or reset the password', async () => {
    const fetch = mockFetch(SIGNUP_STARTED, json(409, { error: 'account_exists', message: 'x' }))
    const wrapper = await openSignUp()
    await fillAndSubmit(wrapper)
    await enterCode(wrapper)
    expect(alertText(wrapper)).toBe(
      'An account already exists for this email address. Sign in, or reset the password if you have forgotten it.',
    )
    expect(wrapper.find('#code').exists()).toBe(false)
    expect(wrapper.find('[data-test="resend"]').exists()).toBe(false)
    const signIn = wrapper.get('[data-test="sign-in-instead"]')
    expect(signIn.text()).toBe('Sign in')
    expect(document.activeElement).toBe(signIn.element)
    expect(wrapper.get('[data-test="forgot"]').text()).toBe('Reset your password')
    expect(window.localStorage.length).toBe(0)

    await wrapper.get('[data-test="forgot"]').trigger('click')
    expect(screenOf(wrapper)).toBe('reset-request')
    expect(wrapper.get('#email').element.value).toBe('new@example.com')
    expect(callsOf(fetch)).toEqual(['POST /signup', 'POST /signup/verify'])
  })

  it('"Sign in" after 409 opens the sign-in screen with the address, focused on the password', async () => {
    mockFetch(SIGNUP_STARTED, json(409, { error: 'account_exists', message: 'x' }))
    const wrapper = await openSignUp()
    await fillAndSubmit(wrapper)
    await enterCode(wrapper)
    await wrapper.get('[data-test="sign-in-instead"]').trigger('click')
    expect(screenOf(wrapper)).toBe('signin')
    expect(wrapper.get('#email').element.value).toBe('new@example.com')
    expect(document.activeElement).toBe(wrapper.get('#password').element)
  })

  it.each([
    ['expired', 'This code has expired. Start again to get a new one.'],
    ['used', 'This code was already used. Start again to get a new one.'],
    ['too_many_attempts', 'Too many wrong codes. Start again to get a new one.'],
  ])('ends the sign-up on session_expired (%s); "Start again" returns to sign-up with the address', async (reason, message) => {
    mockFetch(SIGNUP_STARTED, json(410, { error: 'session_expired', message: 'x', reason }))
    const wrapper = await openSignUp()
    await fillAndSubmit(wrapper)
    await enterCode(wrapper)
    expect(alertText(wrapper)).toBe(message)
    const again = wrapper.get('[data-test="start-over"]')
    expect(again.text()).toBe('Start again')
    expect(document.activeElement).toBe(again.element)
    await again.trigger('click')
    expect(screenOf(wrapper)).toBe('signup')
    expect(wrapper.get('#email').element.value).toBe('new@example.com')
    expect(wrapper.get('#new-password').element.value).toBe('')
  })

  it('closes the sign-up code after the last wrong attempt', async () => {
    mockFetch(SIGNUP_STARTED, json(401, { error: 'invalid_code', message: 'x', attempts_remaining: 0 }))
    const wrapper = await openSignUp()
    await fillAndSubmit(wrapper)
    await enterCode(wrapper, '000000')
    expect(alertText(wrapper)).toBe('That code is not correct. No attempts are left. Start again to get a new code.')
    expect(wrapper.find('form').exists()).toBe(false)
  })

  it('"Use another address" returns to an empty sign-up screen; "Back to sign in" to sign-in', async () => {
    mockFetch(SIGNUP_STARTED)
    const wrapper = await openSignUp()
    await fillAndSubmit(wrapper)
    const other = wrapper.get('[data-test="other-account"]')
    expect(other.text()).toBe('Use another address')
    await other.trigger('click')
    expect(screenOf(wrapper)).toBe('signup')
    expect(wrapper.get('#email').element.value).toBe('')
    await wrapper.get('[data-test="back-to-sign-in"]').trigger('click')
    expect(screenOf(wrapper)).toBe('signin')
    expect(document.activeElement).toBe(wrapper.get('#email').element)
  })
})
