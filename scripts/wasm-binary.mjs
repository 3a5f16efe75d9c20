// Reading and writing the wasm binary format, for the build's post-processing
// scripts (minify-imports.mjs, snip-panics.mjs): LEB128 numbers, the list of
// sections, and the length of an import's description.

/** The unsigned LEB128 number at `at` in `buf`: `[value, offset after it]`. */
export function leb(buf, at) {
  let value = 0;
  let shift = 0;
  for (;;) {
    const b = buf[at++];
    value += (b & 0x7f) * 2 ** shift;
    shift += 7;
    if (b < 0x80) return [value, at];
  }
}

/** `n` as unsigned LEB128 bytes. */
export function encodeLeb(n) {
  const out = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return Buffer.from(out);
}

/** The sections of a module: `{ id, header, start, end }` (header: offset of the id byte; start..end: content). */
export function sections(buf) {
  const out = [];
  for (let at = 8; at < buf.length; ) {
    const [size, start] = leb(buf, at + 1);
    out.push({ id: buf[at], header: at, start, end: start + size });
    at = start + size;
  }
  return out;
}

/** An import's description at `at` (after its names): `[kind, offset after it]`. */
export function importDescription(buf, at) {
  const kind = buf[at++];
  if (kind === 0) return [kind, leb(buf, at)[1]]; // function: type index
  if (kind === 1 || kind === 2) {
    if (kind === 1) at++; // table: reference type
    const flags = buf[at++];
    [, at] = leb(buf, at);
    if (flags & 1) [, at] = leb(buf, at);
    return [kind, at];
  }
  if (kind === 3) return [kind, at + 2]; // global: value type, mutability
  if (kind === 4) return [kind, leb(buf, at + 1)[1]]; // tag
  throw new Error(`unknown import kind ${kind}`);
}
