import { mount } from '@vue/test-utils'
import axe from 'axe-core'
import { beforeAll, beforeEach, describe, expect, it, vi } from 'vitest'
import App from '../src/App.vue'
import {
  enterCode,
  json,
  mockFetch,
  mockStatus,
  screenOf,
  settle,
  signIn,
  statusAnswer,
  submit,
  submitWith,
} from './helpers.js'

/**
 * axe-core on every screen, in its plain and its error states. happy-dom lays nothing out, so
 * color contrast is left to the browser tests; every other WCAG 2.x A/AA rule and axe's best
 * practices are checked here.
 */
const OPTIONS = {
  runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] },
  rules: { 'color-contrast': { enabled: false } },
}

async function violations() {
  const result = await axe.run(document, OPTIONS)
  return result.violations.map((v) => `${v.id}: ${v.nodes.map((n) => n.html).join(' | ')}`)
}

/** axe finds nothing, there is one h1, and the focus is on the heading or the first field. */
async function expectClean(wrapper, screen, focused) {
  expect(screenOf(wrapper)).toBe(screen)
  expect(await violations()).toEqual([])
  expect(wrapper.findAll('h1')).toHaveLength(1)
  if (focused) expect(document.activeElement).toBe(wrapper.get(focused).element)
}

const STARTED = (status = 200) => () => json(status, { session_id: 'sess_1', expires_in: 300, resend_in: 30 })

function mountApp(props = {}) {
  return mount(App, { props: { signup: 'true', ...props }, attachTo: document.body })
}

beforeAll(() => {
  // The one rule of a browser's own style sheet the page relies on, which happy-dom lacks.
  const style = document.createElement('style')
  style.textContent = '[hidden] { display: none !important; }'
  document.head.append(style)
})

beforeEach(() => {
  document.documentElement.lang = 'en'
  window.localStorage.clear()
})

describe('axe-core finds nothing on any screen', () => {
  it('signin, plain and with field and API errors', async () => {
    mockFetch(json(401, { error: 'invalid_credentials', message: 'x' }))
    const wrapper = mountApp()
    await expectClean(wrapper, 'signin', '#email')
    await submit(wrapper)
    expect(wrapper.find('#email-error').exists()).toBe(true)
    await expectClean(wrapper, 'signin')
    await signIn(wrapper)
    expect(wrapper.get('[data-test="alert"]').text()).not.toBe('')
    await wrapper.get('button[aria-controls="password"]').trigger('click')
    await expectClean(wrapper, 'signin')
  })

  it('signup, plain and with a weak password', async () => {
    mockFetch(json(400, { error: 'weak_password', message: 'Use at least 12 characters.', rule: 'too_short' }))
    const wrapper = mountApp()
    await wrapper.get('[data-test="create-account"]').trigger('click')
    await expectClean(wrapper, 'signup', 'h1')
    await submitWith(wrapper, { '#email': 'new@example.com', '#new-password': 'short' })
    expect(wrapper.get('#new-password').attributes('aria-invalid')).toBe('true')
    await wrapper.get('button[aria-controls="new-password"]').trigger('click')
    await expectClean(wrapper, 'signup', '#new-password')
  })

  it('code (sign-in), plain, with a wrong code and closed', async () => {
    mockFetch(
      STARTED(),
      json(401, { error: 'invalid_code', message: 'x', attempts_remaining: 2 }),
      json(410, { error: 'session_expired', message: 'x', reason: 'expired' }),
    )
    const wrapper = mountApp()
    await signIn(wrapper)
    await expectClean(wrapper, 'code', '#code')
    await submit(wrapper) // too short: the field's own error
    await expectClean(wrapper, 'code', '#code')
    await enterCode(wrapper, '000000')
    await expectClean(wrapper, 'code', '#code')
    await enterCode(wrapper, '123456')
    await expectClean(wrapper, 'code', '[data-test="sign-in-again"]')
  })

  it('code (sign-in), with each delivery state', async () => {
    // axe needs real timers: the status is asked at once when the page becomes visible.
    let state = 'queued'
    mockStatus(() => statusAnswer(state))
    mockFetch(STARTED())
    const wrapper = mountApp()
    await signIn(wrapper)
    for (state of ['queued', 'sent', 'delayed', 'suppressed']) {
      document.dispatchEvent(new Event('visibilitychange'))
      await settle()
      expect(wrapper.get('[data-delivery]').attributes('data-delivery')).toBe(state)
      await expectClean(wrapper, 'code')
    }
  })

  it('code (sign-up), plain and after 409 account_exists', async () => {
    mockFetch(STARTED(202), json(409, { error: 'account_exists', message: 'x' }))
    const wrapper = mountApp()
    await wrapper.get('[data-test="create-account"]').trigger('click')
    await submitWith(wrapper, { '#email': 'new@example.com', '#new-password': 'correct horse battery' })
    await expectClean(wrapper, 'code', '#code')
    await enterCode(wrapper, '123456')
    await expectClean(wrapper, 'code', '[data-test="sign-in-instead"]')
  })

  it('reset-request, reset-confirm (plain, with errors, closed) and reset-done', async () => {
    mockFetch(
      STARTED(202),
      json(400, { error: 'weak_password', message: '', rule: 'common' }),
      json(200, { reset: true }),
      STARTED(202),
      json(410, { error: 'session_expired', message: 'x', reason: 'used' }),
    )
    const wrapper = mountApp()
    await wrapper.get('[data-test="forgot"]').trigger('click')
    await expectClean(wrapper, 'reset-request', 'h1')
    await submit(wrapper)
    await expectClean(wrapper, 'reset-request', '#email')
    await wrapper.get('#email').setValue('demo@example.com')
    await submit(wrapper)
    await expectClean(wrapper, 'reset-confirm', '#code')
    await submit(wrapper) // both fields missing
    await expectClean(wrapper, 'reset-confirm', '#code')
    await submitWith(wrapper, { '#code': '123456', '#new-password': 'password' })
    await expectClean(wrapper, 'reset-confirm', '#new-password')
    await wrapper.get('#new-password').setValue('a much better passphrase')
    await submit(wrapper)
    await expectClean(wrapper, 'reset-done', 'h1')

    await wrapper.get('[data-test="sign-in"]').trigger('click')
    await wrapper.get('[data-test="forgot"]').trigger('click')
    await submit(wrapper)
    await submitWith(wrapper, { '#code': '123456', '#new-password': 'a much better passphrase' })
    await expectClean(wrapper, 'reset-confirm', '[data-test="start-over"]')
  })

  it('verified', async () => {
    mockFetch(STARTED(), json(200, { verified: true, email: 'demo@example.com' }))
    const wrapper = mountApp()
    await signIn(wrapper)
    await enterCode(wrapper, '123456')
    await expectClean(wrapper, 'verified', 'h1')
  })

  it('handover', async () => {
    vi.spyOn(HTMLFormElement.prototype, 'submit').mockImplementation(() => {})
    window.history.replaceState(null, '', '/?state=abcDEF123_-abcDEF123')
    try {
      const token = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl'
      mockFetch(STARTED(), json(200, { verified: true, email: 'demo@example.com', token }))
      const wrapper = mountApp({ returnUrl: 'http://127.0.0.1:8081/callback' })
      await signIn(wrapper)
      await enterCode(wrapper, '123456')
      await expectClean(wrapper, 'handover', 'h1')
    } finally {
      window.history.replaceState(null, '', '/')
    }
  })
})
