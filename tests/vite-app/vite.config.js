import { defineConfig } from 'vite';

// The package is linked from ../../client-wasm/pkg; nothing special is needed
// beyond letting Vite copy the .wasm files the glue references with
// `new URL('..._bg.wasm', import.meta.url)`.
export default defineConfig({
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022' },
});
