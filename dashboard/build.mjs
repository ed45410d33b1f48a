// Builds the dashboard into ../assets/dashboard/: app.js and app.css (bundled and minified by
// esbuild) and index.html naming them by content hash (`app.<hash>.js`), the same hash
// src/http/dashboard.rs computes from the embedded bytes to serve them with a year's cache.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';

const out = new URL('../assets/dashboard/', import.meta.url);
mkdirSync(out, { recursive: true });
const result = await build({
  entryPoints: ['src/main.js'],
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2020'],
  legalComments: 'eof',
  write: false,
  outdir: 'out',
  entryNames: 'app',
  logLevel: 'warning',
});
const hash = (bytes) => createHash('sha256').update(bytes).digest('hex').slice(0, 16);
const names = {};
for (const f of result.outputFiles) {
  const ext = f.path.endsWith('.css') ? 'css' : 'js';
  writeFileSync(new URL(`app.${ext}`, out), f.contents);
  names[ext] = `app.${hash(f.contents)}.${ext}`;
}
const html = readFileSync('index.html', 'utf8').replace('__CSS__', names.css).replace('__JS__', names.js);
writeFileSync(new URL('index.html', out), html);
console.log(`assets/dashboard: ${names.js}, ${names.css}`);
