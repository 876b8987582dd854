/**
 * A small page on the browser SDK (packages/sdk): connect to the grid server that serves the page,
 * generate greedily into the output box, and show the route's hops. A status line says what
 * the grid can do now (grid-status.ts): no donor yet and how to add one, layers not yet
 * served, or ready. `window.chatPage.generate` is the same call for tests.
 */
import { connect } from '../../packages/sdk/src/browser.ts';
import type { GridClient } from '../../packages/sdk/src/browser.ts';
import { gridStatus } from './grid-status.ts';
import type { PeersAnswer } from './grid-status.ts';

/** The grid's state is asked again this often while the page is open (a tab's donor may come or go). */
const STATUS_POLL_MS = 3000;

declare global {
  interface Window {
    chatPage?: { generate(prompt: string, maxTokens: number): Promise<{ text: string; tokens: number; route: unknown }> };
  }
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const output = $('output');
const button = $<HTMLButtonElement>('go');

async function showStatus(): Promise<void> {
  const answer = await fetch('/api/peers').then((r) => (r.ok ? (r.json() as Promise<PeersAnswer>) : null)).catch(() => null);
  const status = $('status');
  if (!answer) {
    status.textContent = 'The grid server does not answer; it may be restarting.';
    status.className = '';
    return;
  }
  const { ready, text } = gridStatus(answer, location.origin);
  status.textContent = text;
  status.className = ready ? 'ready' : '';
}

async function generate(grid: GridClient, prompt: string, maxTokens: number) {
  output.textContent = '';
  $('error').textContent = '';
  $('route').textContent = 'Dialing the route and running the prompt…';
  let tokens = 0;
  for await (const t of grid.generate(prompt, { maxTokens, temperature: 0 })) {
    if (tokens === 0) $('route').textContent = '';
    output.textContent += t.text;
    if (t.id !== null) tokens += 1;
  }
  const route = grid.routeReport();
  $('route').textContent = route ? route.hops.map((h) => `${h.to === 'client' ? 'back to this tab' : `${h.to.slice(-8)} layers ${h.layers!.start}-${h.layers!.end - 1}`} (${h.transport})`).join(' → ') : '';
  return { text: output.textContent ?? '', tokens, route };
}

connect({ url: location.origin }).then(
  (grid) => {
    void showStatus();
    setInterval(() => void showStatus(), STATUS_POLL_MS);
    window.chatPage = { generate: (prompt, maxTokens) => generate(grid, prompt, maxTokens) };
    button.disabled = false;
    button.onclick = () => {
      button.disabled = true;
      generate(grid, $<HTMLTextAreaElement>('prompt').value, Number($<HTMLInputElement>('max-tokens').value))
        .catch((err: Error) => {
          $('route').textContent = '';
          // The short message: the SDK's source (an /api/route URL) is no news to the reader.
          $('error').textContent = `${err.name}: ${(err as Error & { shortMessage?: string }).shortMessage ?? err.message}`;
        })
        .finally(() => (button.disabled = false));
    };
  },
  (err: Error) => {
    $('status').textContent = 'Could not connect to the grid.';
    $('error').textContent = `${err.name}: ${err.message}`;
  },
);
