import { mount } from '@vue/test-utils'
import { describe, expect, it, vi } from 'vitest'
import SignInStep from '../src/components/SignInStep.vue'
import { alertText, json, mockFetch, pendingFetch, sentBody, settle, signIn, submit, useFakeClock } from './helpers.js'

function mountStep(props = {}) {
  return mount(SignInStep, { props, attachTo: document.body })
}

describe('SignInStep', () => {
  it('has labelled email and password fields and focuses the email first', () => {
    const wrapper = mountStep()
    expect(wrapper.get('label[for="email"]').text()).toBe('Email')
    expect(wrapper.get('label[for="password"]').text()).toBe('Password')
    const email = wrapper.get('#email')
    expect(email.attributes('type')).toBe('email')
    expect(email.attributes('autocomplete')).toBe('username')
    expect(wrapper.get('#password').attributes('type')).toBe('password')
    expect(wrapper.get('#password').attributes('autocomplete')).toBe('current-password')
    expect(document.activeElement).toBe(email.element)
  })

  it('focuses the password when the email is prefilled', () => {
    const wrapper = mountStep({ initialEmail: 'demo@example.com' })
    expect(wrapper.get('#email').element.value).toBe('demo@example.com')
    expect(document.activeElement).toBe(wrapper.get('#password').element)
  })

  it('requires both fields before calling the API', async () => {
    const fetch = mockFetch()
    const wrapper = mountStep()
    await submit(wrapper)
    expect(wrapper.get('#email-error').text()).toBe('Enter your email address.')
    expect(wrapper.get('#password-error').text()).toBe('Enter your password.')
    expect(wrapper.get('#email').attributes('aria-invalid')).toBe('true')
    expect(wrapper.get('#email').attributes('aria-describedby')).toBe('email-error')
    expect(document.activeElement).toBe(wrapper.get('#email').element)
    expect(fetch).not.toHaveBeenCalled()
  })

  it('rejects an address the server would reject, without a call', async () => {
    const fetch = mockFetch()
    const wrapper = mountStep()
    await signIn(wrapper, 'Demo <demo@example.com>')
    expect(wrapper.get('#email-error').text()).toContain('valid email address')
    expect(wrapper.find('#password-error').exists()).toBe(false)
    expect(fetch).not.toHaveBeenCalled()
  })

  it('trims the address, sends both fields and reports the started session', async () => {
    const fetch = mockFetch(json(200, { session_id: 'sess_1', expires_in: 300, resend_in: 30 }))
    const wrapper = mountStep()
    await signIn(wrapper, '  demo@example.com ')
    expect(sentBody(fetch)).toEqual({ email: 'demo@example.com', password: 'demo-password' })
    expect(wrapper.emitted('started')).toEqual([
      [{ email: 'demo@example.com', sessionId: 'sess_1', expiresIn: 300, resendIn: 30 }],
    ])
  })

  it('shows it is working and cannot be submitted twice', async () => {
    const { fetch, resolve } = pendingFetch()
    const wrapper = mountStep()
    await wrapper.get('#email').setValue('demo@example.com')
    await wrapper.get('#password').setValue('demo-password')
    await wrapper.get('form').trigger('submit')
    await wrapper.get('form').trigger('submit')
    await wrapper.get('[data-test="submit"]').trigger('click')
    const button = wrapper.get('[data-test="submit"]')
    expect(button.text()).toBe('Signing in…')
    expect(button.attributes('aria-disabled')).toBe('true')
    expect(button.find('.spinner').exists()).toBe(true)
    expect(wrapper.get('form').attributes('aria-busy')).toBe('true')
    expect(fetch).toHaveBeenCalledTimes(1)
    resolve(json(200, { session_id: 's', expires_in: 300, resend_in: 30 }))
    await settle()
    expect(wrapper.emitted('started')).toHaveLength(1)
  })

  it('says so when the email or password is wrong, in an alert', async () => {
    mockFetch(json(401, { error: 'invalid_credentials', message: 'The email or password is not correct.' }))
    const wrapper = mountStep()
    await signIn(wrapper)
    expect(wrapper.get('[data-test="alert"]').attributes('role')).toBe('alert')
    expect(alertText(wrapper)).toBe('The email or password is not correct.')
    expect(wrapper.get('[data-test="submit"]').attributes('aria-disabled')).toBe('false')
    expect(wrapper.emitted('started')).toBeUndefined()
  })

  it('empties the alert while a new attempt runs, so a repeated message is announced again', async () => {
    let answer
    mockFetch(
      json(401, { error: 'invalid_credentials', message: 'x' }),
      () => new Promise((resolve) => (answer = resolve)),
    )
    const wrapper = mountStep()
    await signIn(wrapper)
    expect(alertText(wrapper)).toBe('The email or password is not correct.')
    await submit(wrapper)
    expect(alertText(wrapper)).toBe('')
    answer(json(401, { error: 'invalid_credentials', message: 'x' }))
    await settle()
    expect(alertText(wrapper)).toBe('The email or password is not correct.')
  })

  it('says when to retry after rate_limited, and holds the button until then', async () => {
    useFakeClock()
    const fetch = mockFetch(
      json(429, { error: 'rate_limited', message: 'x', retry_after: 42 }, { 'Retry-After': '42' }),
      json(200, { session_id: 's', expires_in: 300, resend_in: 30 }),
    )
    const wrapper = mountStep()
    await signIn(wrapper)
    expect(alertText(wrapper)).toBe('Too many codes were requested. Try again in 42 seconds.')
    const button = wrapper.get('[data-test="submit"]')
    expect(button.text()).toBe('Try again in 0:42')
    await wrapper.get('form').trigger('submit')
    expect(fetch).toHaveBeenCalledTimes(1)

    await vi.advanceTimersByTimeAsync(40_000)
    expect(button.text()).toBe('Try again in 0:02')
    await vi.advanceTimersByTimeAsync(2_000)
    expect(button.text()).toBe('Continue')
    await submit(wrapper)
    expect(fetch).toHaveBeenCalledTimes(2)
  })

  it('lets another address through at once after rate_limited', async () => {
    useFakeClock()
    const fetch = mockFetch(
      json(429, { error: 'rate_limited', message: 'x', retry_after: 600 }),
      json(200, { session_id: 's', expires_in: 300, resend_in: 30 }),
    )
    const wrapper = mountStep()
    await signIn(wrapper)
    expect(alertText(wrapper)).toContain('Try again in 10 minutes.')
    await signIn(wrapper, 'other@example.com')
    expect(fetch).toHaveBeenCalledTimes(2)
    expect(wrapper.emitted('started')).toHaveLength(1)
  })

  it('explains a network failure', async () => {
    mockFetch(new TypeError('Failed to fetch'))
    const wrapper = mountStep()
    await signIn(wrapper)
    expect(alertText(wrapper)).toBe('We could not reach the server. Check your connection and try again.')
  })

  it('never shows a raw body, whatever the server answers', async () => {
    mockFetch(
      json(500, { error: 'internal_error', message: 'Traceback (most recent call last): ...' }),
      new Response('{"Message": "Internal server error"}', { status: 502 }),
      new Response('<h1>Bad gateway</h1>', { status: 502, headers: { 'Content-Type': 'text/html' } }),
    )
    const wrapper = mountStep()
    for (let i = 0; i < 3; i += 1) {
      await signIn(wrapper)
      const text = alertText(wrapper)
      expect(text).toBe('Something went wrong on our side. Please try again.')
      expect(wrapper.text()).not.toMatch(/Traceback|[{}<>]|Message/)
    }
  })

  it('shows and hides the password with a toggle button named for what it does', async () => {
    const wrapper = mountStep()
    const toggle = wrapper.get('button[aria-controls="password"]')
    expect(toggle.attributes('type')).toBe('button')
    // The name comes from the visible word, so it always contains it (WCAG 2.5.3, label in name).
    expect(toggle.attributes('aria-label')).toBeUndefined()
    expect(toggle.text()).toBe('Show password')
    expect(toggle.get('.visually-hidden').text()).toBe('password')
    await toggle.trigger('click')
    expect(wrapper.get('#password').attributes('type')).toBe('text')
    expect(toggle.text()).toBe('Hide password')
    await toggle.trigger('click')
    expect(wrapper.get('#password').attributes('type')).toBe('password')
    expect(toggle.text()).toBe('Show password')
  })
})
