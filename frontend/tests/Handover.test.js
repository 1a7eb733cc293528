import { mount } from '@vue/test-utils'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import App from '../src/App.vue'
import { parseReturnUrl, readReturnUrl } from '../src/config.js'
import { MAX_STATE_LENGTH, stateFrom } from '../src/lib/handover.js'
import { enterCode, json, mockFetch, settle, signIn, submit } from './helpers.js'

const RETURN_URL = 'http://127.0.0.1:8081/callback'
const STATE = 'Xq3_-bT0kZ9yLw2vPn8rAe5sHc1uDj4fGm7oKi6xQ0a'
const TOKEN = 'eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImsxIn0.eyJzdWIiOiJhY2N0XzEifQ.c2lnbmF0dXJlLWJ5dGVz'

const STARTED = () => json(200, { session_id: 'sess_1', expires_in: 300, resend_in: 30 })
const VERIFIED = (extra = { token: TOKEN, token_type: 'Bearer', expires_in: 300 }) => () =>
  json(200, { verified: true, email: 'demo@example.com', ...extra })

/** Open the page at `search` (as the app's redirect would) and mount it. */
function openPage(search, props = { returnUrl: RETURN_URL }) {
  window.history.replaceState(null, '', `/${search}`)
  return mount(App, { props, attachTo: document.body })
}

async function signInAndVerify(wrapper) {
  await signIn(wrapper)
  await enterCode(wrapper)
}

/** Every form submit, without navigating: the forms it was called on. */
function spyOnSubmit() {
  const submitted = []
  vi.spyOn(HTMLFormElement.prototype, 'submit').mockImplementation(function submit() {
    submitted.push(this)
  })
  vi.spyOn(HTMLFormElement.prototype, 'requestSubmit').mockImplementation(function requestSubmit() {
    submitted.push(this)
  })
  return submitted
}

/** Everything the page could have written down where the token must never be. */
function placesOutsideTheForm(consoleSpies) {
  const stored = (storage) =>
    Array.from({ length: storage.length }, (_, i) => `${storage.key(i)}=${storage.getItem(storage.key(i))}`)
  return [
    window.location.href,
    String(window.location),
    JSON.stringify(window.history.state),
    document.cookie,
    document.title,
    ...stored(window.localStorage),
    ...stored(window.sessionStorage),
    ...consoleSpies.flatMap((spy) => spy.mock.calls.flat().map(String)),
  ]
}

beforeEach(() => {
  window.localStorage.clear()
  window.sessionStorage.clear()
})

afterEach(() => {
  window.history.replaceState(null, '', '/')
})

describe('hand-over to the app after sign-in', () => {
  it('posts token and state to the return URL with a form that submits itself', async () => {
    const consoleSpies = ['log', 'info', 'debug', 'warn', 'error'].map((name) => vi.spyOn(console, name))
    const submitted = spyOnSubmit()
    const fetch = mockFetch(STARTED, VERIFIED())
    const wrapper = openPage(`?state=${STATE}`)
    const historyLength = window.history.length

    await signInAndVerify(wrapper)

    expect(submitted).toHaveLength(1)
    const form = submitted[0]
    expect(form).toBe(wrapper.get('[data-test="handover-form"]').element)
    expect(form.isConnected).toBe(true)
    expect(form.getAttribute('method')).toBe('post')
    expect(form.method).toBe('post')
    expect(form.action).toBe(RETURN_URL)
    expect(Array.from(new FormData(form).entries())).toEqual([
      ['token', TOKEN],
      ['state', STATE],
    ])
    expect(Array.from(form.elements).map((field) => [field.name, field.type])).toEqual([
      ['token', 'hidden'],
      ['state', 'hidden'],
    ])

    // The token is in the form's body and nowhere else: not in a URL, history, storage or the console.
    expect(form.action).not.toContain(TOKEN)
    expect(window.history.length).toBe(historyLength)
    for (const place of placesOutsideTheForm(consoleSpies)) expect(place).not.toContain(TOKEN)
    expect(window.localStorage.length).toBe(0)
    expect(window.sessionStorage.length).toBe(0)
    expect(fetch).toHaveBeenCalledTimes(2)
    expect(wrapper.text()).not.toContain(TOKEN)
  })

  it('says where it is signing the person in, in a status region, with focus on the heading', async () => {
    spyOnSubmit()
    mockFetch(STARTED, VERIFIED())
    const wrapper = openPage(`?state=${STATE}`)
    await signInAndVerify(wrapper)

    const status = wrapper.get('[data-test="status"]')
    expect(status.attributes('role')).toBe('status')
    expect(status.text()).toBe('Signing you in to 127.0.0.1:8081…')
    expect(wrapper.get('[data-test="verified-email"]').text()).toBe('demo@example.com')
    const heading = wrapper.get('h1')
    expect(heading.attributes('tabindex')).toBe('-1')
    expect(document.activeElement).toBe(heading.element)
    expect(document.title).toBe('Signing in · simple-otp')
    expect(wrapper.find('[data-test="start-again"]').exists()).toBe(false)
  })

  it.each([
    ['no return URL', `?state=${STATE}`, { returnUrl: '' }],
    ['no state', '', { returnUrl: RETURN_URL }],
    ['an empty state', '?state=', { returnUrl: RETURN_URL }],
    ['a state with characters that are not URL-safe', `?state=${encodeURIComponent('<script>x</script>')}`, { returnUrl: RETURN_URL }],
    ['a state with a space', '?state=abc%20def', { returnUrl: RETURN_URL }],
    ['a state that is too long', `?state=${'a'.repeat(MAX_STATE_LENGTH + 1)}`, { returnUrl: RETURN_URL }],
    ['two states', `?state=${STATE}&state=other`, { returnUrl: RETURN_URL }],
  ])('shows the "signed in" card and posts nothing with %s', async (_, search, props) => {
    const submitted = spyOnSubmit()
    mockFetch(STARTED, VERIFIED())
    const wrapper = openPage(search, props)
    await signInAndVerify(wrapper)

    expect(wrapper.get('h1').text()).toBe('You are signed in')
    expect(wrapper.get('[data-test="verified-email"]').text()).toBe('demo@example.com')
    expect(document.activeElement).toBe(wrapper.get('h1').element)
    expect(wrapper.find('[data-test="handover-form"]').exists()).toBe(false)
    expect(document.querySelector('form')).toBeNull()
    expect(submitted).toHaveLength(0)
    expect(wrapper.text()).not.toContain(TOKEN)
  })

  it('shows the card when the API sends no usable token', async () => {
    const submitted = spyOnSubmit()
    mockFetch(STARTED, VERIFIED({ token: 'not a token' }))
    const wrapper = openPage(`?state=${STATE}`)
    await signInAndVerify(wrapper)
    expect(wrapper.get('h1').text()).toBe('You are signed in')
    expect(submitted).toHaveLength(0)
  })

  it('starts over when the page comes back from the back/forward cache', async () => {
    const submitted = spyOnSubmit()
    mockFetch(STARTED, VERIFIED())
    const wrapper = openPage(`?state=${STATE}`)
    await signInAndVerify(wrapper)
    expect(submitted).toHaveLength(1)

    const back = new Event('pageshow')
    back.persisted = true
    window.dispatchEvent(back)
    await settle()
    expect(wrapper.get('h1').text()).toBe('Sign in')
    expect(wrapper.find('[data-test="handover-form"]').exists()).toBe(false)
    expect(document.body.innerHTML).not.toContain(TOKEN)
    expect(submitted).toHaveLength(1)
  })

  it('keeps the state across "Use another account" and hands over after the second sign-in', async () => {
    const submitted = spyOnSubmit()
    mockFetch(STARTED, STARTED, VERIFIED())
    const wrapper = openPage(`?state=${STATE}`)
    await wrapper.get('#email').setValue('demo@example.com')
    await wrapper.get('#password').setValue('demo-password')
    await submit(wrapper)
    await wrapper.get('[data-test="other-account"]').trigger('click')
    await signInAndVerify(wrapper)
    expect(submitted).toHaveLength(1)
    expect(new FormData(submitted[0]).get('state')).toBe(STATE)
  })
})

describe('the state from the URL', () => {
  it('accepts URL-safe characters up to the length limit', () => {
    expect(stateFrom(`?state=${STATE}`)).toBe(STATE)
    expect(stateFrom('?other=1&state=a.b~c_d-e')).toBe('a.b~c_d-e')
    expect(stateFrom(`?state=${'a'.repeat(MAX_STATE_LENGTH)}`)).toHaveLength(MAX_STATE_LENGTH)
  })

  it.each([
    ['missing', '?other=1'],
    ['empty', '?state='],
    ['too long', `?state=${'a'.repeat(MAX_STATE_LENGTH + 1)}`],
    ['a slash once decoded', '?state=a%2Fb'],
    ['a plus (a space)', '?state=a+b'],
    ['a quote', '?state=a%22b'],
    ['non-ASCII', '?state=%C3%A9t%C3%A9'],
    ['given twice', '?state=a&state=b'],
  ])('ignores a state that is %s', (_, search) => {
    expect(stateFrom(search)).toBe('')
  })
})

describe('VITE_RETURN_URL', () => {
  it('takes an absolute http(s) URL', () => {
    const warn = vi.fn()
    expect(readReturnUrl('http://127.0.0.1:8081/callback', warn)).toBe('http://127.0.0.1:8081/callback')
    expect(readReturnUrl(' https://App.Example.com/auth/callback?x=1 ', warn)).toBe(
      'https://app.example.com/auth/callback?x=1',
    )
    expect(readReturnUrl('', warn)).toBe('')
    expect(readReturnUrl(undefined, warn)).toBe('')
    expect(warn).not.toHaveBeenCalled()
  })

  it.each([
    ['/callback', 'absolute'],
    ['127.0.0.1:8081/callback', 'absolute'],
    ['javascript:alert(1)', 'absolute'],
    ['ftp://example.com/callback', 'absolute'],
    ['https://', 'valid'],
    ['https://user:secret@example.com/callback', 'user name or password'],
    ['https://example.com/callback#frag', 'fragment'],
  ])('treats %s as absent, saying why (%s)', (raw, reason) => {
    const warn = vi.fn()
    expect(readReturnUrl(raw, warn)).toBe('')
    expect(warn).toHaveBeenCalledTimes(1)
    expect(warn.mock.calls[0][0]).toContain('VITE_RETURN_URL')
    expect(warn.mock.calls[0][0]).toContain(reason)
    expect(parseReturnUrl(raw)).toEqual({ url: '', problem: expect.stringContaining(reason) })
  })
})
