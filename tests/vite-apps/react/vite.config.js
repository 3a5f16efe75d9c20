import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// Nothing is configured for mqttspec-wasm: the glue's `new URL('…_bg.wasm', import.meta.url)`
// and the SharedWorker's `new URL('./shared-worker.js', import.meta.url)` are what Vite bundles by itself.
export default defineConfig({
  plugins: [react()],
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022' },
});
