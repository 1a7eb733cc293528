import { mount } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'
import App from '../src/App.vue'
import VerifiedStep from '../src/components/VerifiedStep.vue'
import { alertText, enterCode, json, mockFetch, signIn } from './helpers.js'

const STARTED = () => json(200, { session_id: 'sess_1', expires_in: 300, resend_in: 30 })

describe('App: the three steps', () => {
  it('goes from sign-in to code to verified', async () => {
    const fetch = mockFetch(
      STARTED,
      json(401, { error: 'invalid_code', message: 'x', attempts_remaining: 4 }),
      json(200, { verified: true, email: 'demo@example.com' }),
    )
    const wrapper = mount(App, { attachTo: document.body })
    expect(wrapper.get('h1').text()).toBe('Sign in')
    expect(document.title).toBe('Sign in · simple-otp')

    await signIn(wrapper)
    expect(wrapper.get('h1').text()).toBe('Check your email')
    expect(document.title).toBe('Enter your code · simple-otp')
    expect(wrapper.text()).toContain('We sent a code to d***@example.com.')
    expect(document.activeElement).toBe(wrapper.get('#code').element)

    await enterCode(wrapper, '000000')
    expect(alertText(wrapper)).toBe('That code is not correct. You have 4 attempts left.')

    await enterCode(wrapper, '123456')
    expect(wrapper.get('h1').text()).toBe('You are signed in')
    expect(wrapper.get('[data-test="verified-email"]').text()).toBe('demo@example.com')
    expect(document.activeElement).toBe(wrapper.get('h1').element)
    expect(document.title).toBe('Signed in · simple-otp')
    expect(fetch.mock.calls.map(([url]) => new URL(url, 'http://x').pathname)).toEqual([
      '/otp',
      '/otp/verify',
      '/otp/verify',
    ])
  })

  it('"Use another account" returns to an empty step 1', async () => {
    mockFetch(STARTED)
    const wrapper = mount(App, { attachTo: document.body })
    await signIn(wrapper)
    await wrapper.get('[data-test="other-account"]').trigger('click')
    expect(wrapper.get('h1').text()).toBe('Sign in')
    expect(wrapper.get('#email').element.value).toBe('')
    expect(wrapper.get('#password').element.value).toBe('')
    expect(document.activeElement).toBe(wrapper.get('#email').element)
  })

  it('"Sign in again" after an expired session keeps the email', async () => {
    mockFetch(STARTED, json(410, { error: 'session_expired', message: 'x', reason: 'too_many_attempts' }))
    const wrapper = mount(App, { attachTo: document.body })
    await signIn(wrapper)
    await enterCode(wrapper, '000000')
    await wrapper.get('[data-test="sign-in-again"]').trigger('click')
    expect(wrapper.get('h1').text()).toBe('Sign in')
    expect(wrapper.get('#email').element.value).toBe('demo@example.com')
    expect(alertText(wrapper)).toBe('')
    expect(document.activeElement).toBe(wrapper.get('#password').element)
  })

  it('starts over from the verified state', async () => {
    mockFetch(STARTED, json(200, { verified: true, email: 'demo@example.com' }))
    const wrapper = mount(App, { attachTo: document.body })
    await signIn(wrapper)
    await enterCode(wrapper, '123456')
    await wrapper.get('[data-test="start-again"]').trigger('click')
    expect(wrapper.get('h1').text()).toBe('Sign in')
    expect(wrapper.get('#email').element.value).toBe('')
  })

  it('uses the configured code length', async () => {
    mockFetch(STARTED)
    const wrapper = mount(App, { props: { codeLength: 10 }, attachTo: document.body })
    await signIn(wrapper)
    expect(wrapper.get('#code').attributes('maxlength')).toBe('10')
  })
})

describe('VerifiedStep', () => {
  it('shows the verified email and focuses its heading', () => {
    const wrapper = mount(VerifiedStep, { props: { email: 'alice@example.com' }, attachTo: document.body })
    expect(wrapper.get('[data-test="verified-email"]').text()).toBe('alice@example.com')
    expect(wrapper.get('h1').attributes('tabindex')).toBe('-1')
    expect(document.activeElement).toBe(wrapper.get('h1').element)
  })
})
