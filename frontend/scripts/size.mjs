// Print the gzipped size of the built JS and CSS (what a browser downloads) and write it to
// dist/size.json for the benchmarks. Run after `vite build`; `npm run build` does both.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { constants, gzipSync } from 'node:zlib'

const dist = fileURLToPath(new URL('../dist/', import.meta.url))

function filesUnder(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    return entry.isDirectory() ? filesUnder(path) : [path]
  })
}

let files
try {
  files = filesUnder(dist).filter((path) => /\.(js|css)$/.test(path))
} catch {
  console.error(`size: ${dist} not found; run "vite build" first`)
  process.exit(1)
}
if (files.length === 0) {
  console.error('size: no .js or .css files in dist/')
  process.exit(1)
}

const rows = files.sort().map((path) => {
  const raw = readFileSync(path)
  const gzip = gzipSync(raw, { level: constants.Z_BEST_COMPRESSION }).length
  return { file: relative(dist, path).split('\\').join('/'), bytes: raw.length, gzip_bytes: gzip }
})
const sum = (kind) => rows.filter((row) => row.file.endsWith(`.${kind}`)).reduce((n, row) => n + row.gzip_bytes, 0)
const result = {
  js_gzip_bytes: sum('js'),
  css_gzip_bytes: sum('css'),
  total_gzip_bytes: sum('js') + sum('css'),
  gzip_level: constants.Z_BEST_COMPRESSION,
  files: rows,
}
writeFileSync(join(dist, 'size.json'), `${JSON.stringify(result, null, 2)}\n`)

const kb = (n) => `${(n / 1024).toFixed(2)} KiB`
console.log('\nBundle size (gzip -9):')
for (const row of rows) console.log(`  ${row.file.padEnd(36)} ${kb(row.bytes).padStart(11)}  gzip ${kb(row.gzip_bytes).padStart(10)}`)
console.log(`  JS ${kb(result.js_gzip_bytes)} + CSS ${kb(result.css_gzip_bytes)} = ${kb(result.total_gzip_bytes)} gzipped (${result.total_gzip_bytes} bytes)`)
console.log('  written to dist/size.json')
