/**
 * A small page on the browser SDK (web/sdk): connect to the grid server that serves the page,
 * generate greedily into the output box, and show the route's hops. `window.chatPage.generate`
 * is the same call for tests.
 */
import { connect } from '../sdk/index.ts';
import type { GridClient } from '../sdk/index.ts';

declare global {
  interface Window {
    chatPage?: { generate(prompt: string, maxTokens: number): Promise<{ text: string; tokens: number; route: unknown }> };
  }
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const output = $('output');
const button = $<HTMLButtonElement>('go');

async function generate(grid: GridClient, prompt: string, maxTokens: number) {
  output.textContent = '';
  let tokens = 0;
  for await (const t of grid.generate(prompt, { maxTokens, temperature: 0 })) {
    output.textContent += t.text;
    if (t.id !== null) tokens += 1;
  }
  const route = grid.routeReport();
  $('route').textContent = route ? route.hops.map((h) => `${h.to === 'client' ? 'back to this tab' : `${h.to.slice(-8)} layers ${h.layers!.start}-${h.layers!.end - 1}`} (${h.transport})`).join(' → ') : '';
  return { text: output.textContent ?? '', tokens, route };
}

connect({ url: location.origin }).then(
  (grid) => {
    window.chatPage = { generate: (prompt, maxTokens) => generate(grid, prompt, maxTokens) };
    button.disabled = false;
    button.onclick = () => {
      button.disabled = true;
      generate(grid, $<HTMLTextAreaElement>('prompt').value, Number($<HTMLInputElement>('max-tokens').value))
        .catch((err: Error) => ($('error').textContent = `${err.name}: ${err.message}`))
        .finally(() => (button.disabled = false));
    };
  },
  (err: Error) => ($('error').textContent = `${err.name}: ${err.message}`),
);
