// `node --import ./test/helpers/record-imports.mjs …`: writes every package the process imports by name (a bare
// specifier reaching Node's ESM resolver: `ioredis`, `@statelyai/inspect`, `jose/…`) to stderr as one line,
// `import-package <name>`, the first time it is imported. test/startup-modules.test.ts reads them. (A package's own
// `require` calls inside CommonJS are not seen: only what our code imports.)
import { register } from 'node:module';

const hooks = `
const seen = new Set();
export async function resolve(specifier, context, next) {
  if (!/^(node:|file:|data:|\\.|\\/)/.test(specifier)) {
    const name = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0];
    if (!seen.has(name)) {
      seen.add(name);
      process.stderr.write('import-package ' + name + '\\n');
    }
  }
  return next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);
