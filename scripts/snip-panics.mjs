// Replaces the body of Rust's panic entry points with `unreachable` in a
// wasm module that still has its name section (wasm-bindgen --keep-debug):
// node scripts/snip-panics.mjs IN.wasm OUT.wasm
//
// What `wasm-snip --snip-rust-panicking-code` does (the Rust and WebAssembly
// book, "Shrinking .wasm size"), for the MQTT-only entry point of the npm
// package. Its build has no panic hook: a panic already ends in a bare trap
// that nobody sees, but std's panic handler still formats the message first,
// which links `core::fmt` (integer and padding code, `fmt::write`, payload
// boxes: ~4.5 KB of wasm). With the entry points below trapping at once,
// wasm-opt drops all of that as dead code, and a panic stays what it was
// from the page's point of view: a `RuntimeError: unreachable`. Nothing
// fed by the network panics there (crates/mqtt-session denies indexing,
// unwrap and panics outside tests).
//
// Fails (and so fails the build) if the module has no name section or none
// of the functions is found, rather than silently snip nothing.
import { readFileSync, writeFileSync } from "node:fs";
import { encodeLeb, importDescription, leb as lebIn, sections } from "./wasm-binary.mjs";

const [input, output] = process.argv.slice(2);
const wasm = readFileSync(input);

/** Functions whose whole job is to report a panic or an allocation failure. */
const PANIC_PATHS = [
  /::panicking::/,
  /rust_begin_unwind|__rust_start_panic|rust_panic\b/,
  /::slice::index::slice_\w*fail|::str::slice_error_fail/,
  /::result::unwrap_failed|::option::expect_failed|::option::unwrap_failed/,
  /::raw_vec::capacity_overflow|::raw_vec::handle_error/,
  /::alloc::handle_alloc_error|rust_oom|default_alloc_error_hook|__rust_alloc_error_handler/,
  /::cell::panic_already_\w*borrowed/,
  /^bytes::panic_\w+/,
];

const leb = (at) => lebIn(wasm, at);

let importedFunctions = 0;
const names = new Map(); // function index -> name
for (const { id, start, end } of sections(wasm)) {
  if (id === 2) {
    let [count, at] = leb(start);
    while (count--) {
      let len;
      [len, at] = leb(at);
      at += len; // module
      [len, at] = leb(at);
      at += len; // field
      let kind;
      [kind, at] = importDescription(wasm, at);
      if (kind === 0) importedFunctions++;
    }
  }
  if (id === 0) {
    const [len, at0] = leb(start);
    if (wasm.toString("utf8", at0, at0 + len) !== "name") continue;
    for (let at = at0 + len; at < end; ) {
      const sub = wasm[at];
      const [size, body] = leb(at + 1);
      if (sub === 1) {
        let [count, p] = leb(body);
        while (count--) {
          let index, n;
          [index, p] = leb(p);
          [n, p] = leb(p);
          names.set(index, wasm.toString("utf8", p, p + n));
          p += n;
        }
      }
      at = body + size;
    }
  }
}
if (!names.size) throw new Error(`snip-panics: ${input} has no function names (build it with wasm-bindgen --keep-debug)`);

const snipped = [];
const parts = [wasm.subarray(0, 8)];
for (const { id, start, end, header } of sections(wasm)) {
  if (id !== 10) {
    parts.push(wasm.subarray(header, end));
    continue;
  }
  let [count, at] = leb(start);
  const bodies = [encodeLeb(count)];
  for (let i = 0; i < count; i++) {
    const [size, body] = leb(at);
    const name = names.get(importedFunctions + i) ?? "";
    if (PANIC_PATHS.some((re) => re.test(name))) {
      snipped.push(name);
      bodies.push(Buffer.from([3, 0, 0x00, 0x0b])); // size 3: no locals, unreachable, end
    } else {
      bodies.push(wasm.subarray(at, body + size));
    }
    at = body + size;
  }
  const content = Buffer.concat(bodies);
  parts.push(Buffer.from([10]), encodeLeb(content.length), content);
}
if (!snipped.length) throw new Error("snip-panics: no panic entry point found: did the names change?");
writeFileSync(output, Buffer.concat(parts));
console.error(`snip-panics: ${snipped.length} functions now trap at once`);
