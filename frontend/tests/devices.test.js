import { mount } from '@vue/test-utils'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import App from '../src/App.vue'
import SignInStep from '../src/components/SignInStep.vue'
import { deviceKey, loadDeviceToken, saveDeviceToken } from '../src/lib/devices.js'
import { enterCode, json, mockFetch, sentBody, signIn } from './helpers.js'

const DEVICE_1 = 'dT1_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'
const DEVICE_2 = 'dT2-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'

const STARTED = () => json(200, { session_id: 'sess_1', expires_in: 300, resend_in: 30 })
const VERIFIED = (deviceToken, email = 'demo@example.com') => () =>
  json(200, { verified: true, email, token_type: 'Bearer', expires_in: 300, device_token: deviceToken })

/** Back to an empty sign-in screen from the verified one. */
async function startAgain(wrapper) {
  await wrapper.get('[data-test="start-again"]').trigger('click')
}

/** A localStorage whose every use throws, as with storage blocked for the site or full. */
function brokenStorage() {
  const fail = () => {
    throw new DOMException('The operation is insecure.', 'SecurityError')
  }
  const broken = { getItem: vi.fn(fail), setItem: vi.fn(fail), removeItem: fail, clear: fail, key: fail, length: 0 }
  vi.spyOn(window, 'localStorage', 'get').mockReturnValue(broken)
  return broken
}

beforeEach(() => {
  window.localStorage.clear()
})

describe('device tokens in localStorage', () => {
  it('keys them by the address, trimmed and lowercased', () => {
    expect(deviceKey('  Demo@Example.COM ')).toBe('simple-otp:device:demo@example.com')
    expect(saveDeviceToken(' Demo@Example.com', DEVICE_1)).toBe(true)
    expect(window.localStorage.getItem('simple-otp:device:demo@example.com')).toBe(DEVICE_1)
    expect(loadDeviceToken('demo@example.com')).toBe(DEVICE_1)
    expect(loadDeviceToken('DEMO@example.com  ')).toBe(DEVICE_1)
    expect(loadDeviceToken('other@example.com')).toBe('')
  })

  it('stores only values shaped like a token, and reads back only those', () => {
    expect(saveDeviceToken('demo@example.com', 'short')).toBe(false)
    expect(saveDeviceToken('demo@example.com', 'has spaces and more than sixteen')).toBe(false)
    expect(saveDeviceToken('', DEVICE_1)).toBe(false)
    expect(window.localStorage.length).toBe(0)
    window.localStorage.setItem(deviceKey('demo@example.com'), '<script>not a token</script>')
    expect(loadDeviceToken('demo@example.com')).toBe('')
  })

  it('does without when storage throws', () => {
    const broken = brokenStorage()
    expect(saveDeviceToken('demo@example.com', DEVICE_1)).toBe(false)
    expect(loadDeviceToken('demo@example.com')).toBe('')
    expect(broken.setItem).toHaveBeenCalledOnce()
    expect(broken.getItem).toHaveBeenCalledOnce()
  })

  it('does without when even reaching localStorage throws', () => {
    vi.spyOn(window, 'localStorage', 'get').mockImplementation(() => {
      throw new DOMException('The operation is insecure.', 'SecurityError')
    })
    expect(saveDeviceToken('demo@example.com', DEVICE_1)).toBe(false)
    expect(loadDeviceToken('demo@example.com')).toBe('')
  })
})

describe('trusted device: the page keeps the token and sends it back', () => {
  it('stores the token of a verified sign-in and sends it with the next sign-in of that address', async () => {
    const fetch = mockFetch(STARTED, VERIFIED(DEVICE_1), STARTED)
    const wrapper = mount(App, { attachTo: document.body })
    await signIn(wrapper)
    expect(sentBody(fetch, 0)).toEqual({ email: 'demo@example.com', password: 'demo-password' })
    await enterCode(wrapper)
    expect(wrapper.get('[data-screen="verified"]').exists()).toBe(true)
    expect(window.localStorage.getItem('simple-otp:device:demo@example.com')).toBe(DEVICE_1)

    await startAgain(wrapper)
    await signIn(wrapper, ' Demo@Example.com ')
    expect(sentBody(fetch, 2)).toEqual({
      email: 'Demo@Example.com',
      password: 'demo-password',
      device_token: DEVICE_1,
    })
  })

  it('does not send one address\'s token with another address', async () => {
    window.localStorage.setItem(deviceKey('demo@example.com'), DEVICE_1)
    const fetch = mockFetch(STARTED, STARTED)
    const wrapper = mount(SignInStep, { attachTo: document.body })
    await signIn(wrapper, 'other@example.com')
    expect(sentBody(fetch, 0)).toEqual({ email: 'other@example.com', password: 'demo-password' })
    expect(sentBody(fetch, 0)).not.toHaveProperty('device_token')
  })

  it('replaces a token with the newer one for the same address, leaving other addresses alone', async () => {
    window.localStorage.setItem(deviceKey('demo@example.com'), DEVICE_1)
    window.localStorage.setItem(deviceKey('other@example.com'), DEVICE_1)
    const fetch = mockFetch(STARTED, VERIFIED(DEVICE_2), STARTED)
    const wrapper = mount(App, { attachTo: document.body })
    await signIn(wrapper)
    expect(sentBody(fetch, 0).device_token).toBe(DEVICE_1)
    await enterCode(wrapper)
    expect(window.localStorage.getItem(deviceKey('demo@example.com'))).toBe(DEVICE_2)
    expect(window.localStorage.getItem(deviceKey('other@example.com'))).toBe(DEVICE_1)

    await startAgain(wrapper)
    await signIn(wrapper)
    expect(sentBody(fetch, 2).device_token).toBe(DEVICE_2)
  })

  it('keeps the stored token when a verify answer has none or a malformed one', async () => {
    window.localStorage.setItem(deviceKey('demo@example.com'), DEVICE_1)
    mockFetch(STARTED, VERIFIED('not a token!'))
    const wrapper = mount(App, { attachTo: document.body })
    await signIn(wrapper)
    await enterCode(wrapper)
    expect(wrapper.get('[data-screen="verified"]').exists()).toBe(true)
    expect(window.localStorage.getItem(deviceKey('demo@example.com'))).toBe(DEVICE_1)
  })

  it('signs in without a token when localStorage throws', async () => {
    const broken = brokenStorage()
    const fetch = mockFetch(STARTED, VERIFIED(DEVICE_1), STARTED)
    const wrapper = mount(App, { attachTo: document.body })
    await signIn(wrapper)
    expect(sentBody(fetch, 0)).toEqual({ email: 'demo@example.com', password: 'demo-password' })
    await enterCode(wrapper)
    expect(wrapper.get('h1').text()).toBe('You are signed in')
    await startAgain(wrapper)
    await signIn(wrapper)
    expect(sentBody(fetch, 2)).not.toHaveProperty('device_token')
    expect(wrapper.get('[data-screen="code"]').exists()).toBe(true)
    expect(broken.setItem).toHaveBeenCalledWith('simple-otp:device:demo@example.com', DEVICE_1)
    expect(broken.getItem).toHaveBeenCalledTimes(2)
  })
})
