// Gives the module's imports and exports one- or two-letter names, in the
// .wasm and in wasm-bindgen's glue (pkg/tokenrelay_wasm.js) alike.
//
// wasm-bindgen names every import `__wbg_<name>_<16 hex digits>` in a module
// called "./tokenrelay_wasm_bg.js" (and, for a module that hands closures
// to JS, exports their invokers as
// `wasm_bindgen__convert__closures_____invoke__h<16 hex digits>`): KBs of
// names in the .wasm and again in the glue, the hashes incompressible.
// build.sh runs `wasm-opt --minify-imports-and-exports-and-modules`, which
// renames them in the .wasm and prints the mapping; this script applies
// that mapping to the glue and checks that nothing was left unmapped, so
// a wasm-bindgen upgrade that changes the glue's shape fails the build
// instead of shipping a module that cannot be instantiated.
//
// Usage: node scripts/minify-names.mjs <mapping.json> <glue.js>
import { readFileSync, writeFileSync } from 'node:fs';

const [mappingPath, gluePath] = process.argv.slice(2);
const mapping = JSON.parse(readFileSync(mappingPath, 'utf8'));
let glue = readFileSync(gluePath, 'utf8');

const fail = (message) => {
  console.error(`minify-names: ${message}`);
  process.exit(1);
};
const escape = (s) => s.replace(/[$.*+?^()[\]{}|\\]/g, '\\$&');
const identifier = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

// Every import lives in the one module: the glue names it once, as the key
// of the import object it returns.
const modules = new Set(mapping.imports.map(([module]) => module));
if (modules.size !== 1) fail(`expected one import module, found ${[...modules].join(', ')}`);
const [module] = modules;
const moduleKey = new RegExp(`"${escape(module)}"\\s*:`, 'g');
if ((glue.match(moduleKey) || []).length !== 1) fail(`the glue does not name the module "${module}" exactly once`);
glue = glue.replace(moduleKey, () => '"a":');

// Each import is one key of that object: the name appears exactly once.
for (const [, from, to] of mapping.imports) {
  if (!identifier.test(to)) fail(`"${to}" is not an identifier`);
  const name = new RegExp(`(?<![\\w$])${escape(from)}(?![\\w$])`, 'g');
  const found = (glue.match(name) || []).length;
  if (found !== 1) fail(`import ${from} appears ${found} times in the glue, expected once`);
  glue = glue.replace(name, () => to);
}

// Exports are read as `wasm.<name>`; the glue's own functions of the same
// name (the JS wrappers) keep theirs.
for (const [from, to] of mapping.exports) {
  if (!identifier.test(to)) fail(`"${to}" is not an identifier`);
  glue = glue.replace(new RegExp(`\\bwasm\\.${escape(from)}(?![\\w$])`, 'g'), () => `wasm.${to}`);
}

// Nothing may be left unrenamed where the module is reached: every
// `wasm.<name>` read is a new export name, and no import key keeps its
// wasm-bindgen name.
const exported = new Set(mapping.exports.map(([, to]) => to));
for (const [, name] of glue.matchAll(/\bwasm\.([\w$]+)/g)) {
  if (!exported.has(name)) fail(`the glue reads wasm.${name}, which the module does not export`);
}
const left = glue.match(/^\s*(?:__wbg_|__wbindgen_)\w+\s*:/m);
if (left) fail(`an import left unmapped: ${left[0].trim()}`);

writeFileSync(gluePath, glue);
console.log(`minify-names: ${mapping.imports.length} imports, ${mapping.exports.length} exports renamed`);
