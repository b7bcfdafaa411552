// The reference reader (benchmark (b)): one Node https.get of the
// pod's log through the apiserver with the operator's credentials, each chunk
// hashed with sha256 and written to a file with backpressure, nothing else.
// Run as its own process so its CPU is its own:
//   node bench/bare-read.ts URL CA_FILE TOKEN OUT_FILE
// Prints one JSON line: {bytes, secs, cpuS, sha256}.
import { createHash } from 'node:crypto';
import { createWriteStream, readFileSync } from 'node:fs';
import { get } from 'node:https';

const [url, caFile, token, out] = process.argv.slice(2);
if (!url || !caFile || !token || !out) {
  console.error('usage: node bench/bare-read.ts URL CA_FILE TOKEN OUT_FILE');
  process.exit(2);
}
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const file = createWriteStream(out);
const hash = createHash('sha256');
let bytes = 0;
get(url, { ca: readFileSync(caFile), headers: { Authorization: `Bearer ${token}` } }, (res) => {
  if (res.statusCode !== 200) {
    console.error(`HTTP ${res.statusCode}`);
    process.exit(1);
  }
  res.on('data', (chunk: Buffer) => {
    hash.update(chunk);
    bytes += chunk.length;
    if (!file.write(chunk)) {
      res.pause();
      file.once('drain', () => res.resume());
    }
  });
  res.on('end', () => {
    file.end(() => {
      const secs = (performance.now() - t0) / 1000;
      const c = process.cpuUsage(cpu0);
      console.log(JSON.stringify({ bytes, secs, cpuS: (c.user + c.system) / 1e6, sha256: hash.digest('hex') }));
    });
  });
}).on('error', (err) => {
  console.error(String(err));
  process.exit(1);
});
