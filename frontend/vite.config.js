import vue from '@vitejs/plugin-vue'
import { defineConfig, loadEnv } from 'vite'

export default defineConfig(({ command, mode }) => {
  const env = loadEnv(mode, process.cwd(), 'VITE_')
  if (command === 'build' && !env.VITE_API_BASE_URL) {
    console.warn(
      '\nVITE_API_BASE_URL is not set: the page will call the API on its own origin (/otp).\n' +
        'Set it to the API Gateway URL when the page and the API are on different origins.\n',
    )
  }
  return {
    plugins: [vue()],
    build: {
      outDir: 'dist',
      emptyOutDir: true,
      sourcemap: false,
    },
    test: {
      environment: 'happy-dom',
      include: ['tests/**/*.test.js'],
      setupFiles: ['tests/setup.js'],
      restoreMocks: true,
      unstubGlobals: true,
      // Sign-up fixed off, so a mounted App makes no GET /config unless a test asks for it
      // (with the App's `signup` prop); every fetch a test mocks is then one it expects.
      env: { VITE_SIGNUP: 'false' },
    },
  }
})
