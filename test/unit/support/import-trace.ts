// `node --import ./test/unit/support/import-trace.ts …`: at exit, writes the URL
// of every module the process resolved to $LOGTAIL_IMPORT_TRACE, one a line.
import { writeFileSync } from 'node:fs';
import { registerHooks } from 'node:module';

const seen = new Set<string>();
registerHooks({
  resolve(specifier, context, next) {
    const r = next(specifier, context);
    seen.add(r.url);
    return r;
  },
});
process.on('exit', () => {
  if (process.env.LOGTAIL_IMPORT_TRACE) writeFileSync(process.env.LOGTAIL_IMPORT_TRACE, [...seen].join('\n') + '\n');
});
