// Shortens the names of the wasm's imports from its JS glue, in both files:
// node scripts/minify-imports.mjs DIR NAME (DIR/NAME_bg.wasm + DIR/NAME.js).
//
// wasm-bindgen names each import `__wbg_<function>_<16 hex digits>` (about
// 90 of them in the MQTT client), and the names appear twice: in the wasm's
// import section and as keys of the import object in the glue. The hashes do
// not compress, so short names (`a`, `b`, ... `ab`) save ~2.5 KB of gzip per
// entry point. Export names are kept (the .d.ts `InitOutput` lists them).
// Fails (and so fails the build) if a name is not found exactly once in the
// glue, rather than emit a module whose imports would not link.
import { readFileSync, writeFileSync } from "node:fs";
import { encodeLeb, importDescription, leb as lebIn, sections } from "./wasm-binary.mjs";

const [dir, name] = process.argv.slice(2);
const wasmPath = `${dir}/${name}_bg.wasm`;
const jsPath = `${dir}/${name}.js`;
const wasm = readFileSync(wasmPath);
let js = readFileSync(jsPath, "utf8");
const glue = `./${name}_bg.js`;
const leb = (at) => lebIn(wasm, at);

function encodeName(s) {
  const bytes = Buffer.from(s, "utf8");
  return Buffer.concat([encodeLeb(bytes.length), bytes]);
}
function shortName(i) {
  const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  let s = "";
  do {
    s += letters[i % letters.length];
    i = Math.floor(i / letters.length) - 1;
  } while (i >= 0);
  return s;
}

const parts = [wasm.subarray(0, 8)];
let renamed = 0;
for (const { id, header, start, end } of sections(wasm)) {
  if (id !== 2) {
    parts.push(wasm.subarray(header, end));
    continue;
  }
  // The import section: module name, field name, then a description we copy.
  let [count, p] = leb(start);
  const out = [encodeLeb(count)];
  while (count--) {
    const [modLen, modAt] = leb(p);
    const module = wasm.toString("utf8", modAt, modAt + modLen);
    const [fieldLen, fieldAt] = leb(modAt + modLen);
    const field = wasm.toString("utf8", fieldAt, fieldAt + fieldLen);
    const descAt = fieldAt + fieldLen;
    const [, q] = importDescription(wasm, descAt);
    let newField = field;
    if (module === glue) {
      newField = shortName(renamed++);
      const key = new RegExp(`(?<![\\w$])${field.replace(/\$/g, "\\$")}(?=\\s*:)`, "g");
      const hits = js.match(key)?.length ?? 0;
      if (hits !== 1) throw new Error(`minify-imports: ${field} found ${hits} times in ${jsPath}`);
      js = js.replace(key, newField);
    }
    out.push(wasm.subarray(p, modAt + modLen), encodeName(newField), wasm.subarray(descAt, q));
    p = q;
  }
  const section = Buffer.concat(out);
  parts.push(Buffer.from([2]), encodeLeb(section.length), section);
}
writeFileSync(wasmPath, Buffer.concat(parts));
writeFileSync(jsPath, js);
