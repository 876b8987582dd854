/**
 * Builds the browser app in web/ (donor page, SDK) into dist/web. onnxruntime-web's WASM and
 * worker files are excluded from dependency pre-bundling so they load from their own URLs.
 */
import { defineConfig } from 'vite';

export default defineConfig({
  root: 'web',
  build: { outDir: '../dist/web', emptyOutDir: true, target: 'es2023' },
  optimizeDeps: { exclude: ['onnxruntime-web'] },
  worker: { format: 'es' },
});
