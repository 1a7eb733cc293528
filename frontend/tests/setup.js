import { enableAutoUnmount } from '@vue/test-utils'
import { afterEach, beforeEach, vi } from 'vitest'
import { mockFetch, resetStatus } from './helpers.js'

enableAutoUnmount(afterEach)

// No test reaches the network: a call it did not script fails as "unexpected fetch", and the
// code screens' status polls get a quiet 410 unless the test scripts them (mockStatus).
beforeEach(() => {
  resetStatus()
  mockFetch()
})

afterEach(() => {
  vi.useRealTimers()
  document.body.innerHTML = ''
})
