// Minifies tally.src.js with terser and enforces the size budget (5 KB gzipped).
//   node build.js SRC OUT      (mk/sdk.mk runs it; OUT is build/gen/tally.min.js)
'use strict';
const fs = require('fs');
const zlib = require('zlib');
const { minify } = require('terser');

const BUDGET = 5 * 1024; // bytes, gzipped at level 9

async function main() {
  const [src, out] = process.argv.slice(2);
  if (!src || !out) throw new Error('usage: node build.js SRC OUT');
  const code = fs.readFileSync(src, 'utf8');
  const r = await minify(code, {
    ecma: 2020,
    compress: { passes: 2, unsafe_arrows: true },
    mangle: true,
    format: { comments: false, preamble: '/* tally.js ' + require('./package.json').version + ' */' },
  });
  const min = r.code + '\n';
  const gz = zlib.gzipSync(min, { level: 9 }).length;
  console.log('sdk: %s: %d bytes, %d gzipped (budget %d)', out, min.length, gz, BUDGET);
  if (gz >= BUDGET) {
    console.error('sdk: over budget: %d bytes gzipped >= %d', gz, BUDGET);
    process.exit(1);
  }
  fs.writeFileSync(out + '.tmp', min);
  fs.renameSync(out + '.tmp', out);
}

main().catch((e) => {
  console.error('sdk: ' + (e && e.stack ? e.stack : e));
  process.exit(1);
});
