// The GraphQL over HTTP audits of the npm package graphql-http (`serverAudits`) against a live
// `/graphql`: `node http_audit.mjs <graphql-http install dir> <url>` prints one JSON array of
// `{id, name, status, reason}` (status `ok`, `notice`, `warn` or `error`). The Rust test
// `graphql_http_audit` (tests/api/graphql_http.rs) runs it and reads that array.
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';

const [dir, url] = process.argv.slice(2);
if (!dir || !url) {
  console.error('usage: node http_audit.mjs <dir with node_modules/graphql-http> <url>');
  process.exit(2);
}
const require = createRequire(join(resolve(dir), 'package.json'));
const { serverAudits } = require('graphql-http');

const results = [];
for (const audit of serverAudits({ url, fetchFn: fetch })) {
  const r = await audit.fn();
  results.push({ id: r.id, name: r.name, status: r.status, reason: r.reason ?? null });
}
process.stdout.write(JSON.stringify(results));
