/**
 * What the chat page says the grid can do now, from GET /api/peers: no donor yet (and how to
 * add one), donors still getting ready, layers no one serves, or ready. A page on a fresh grid
 * otherwise shows an empty box and a button that fails.
 */
export interface PeersAnswer {
  /** stages serving each layer */
  coverage: number[];
  peers: { role: string; serving?: { start: number; end: number } | null; assignment?: { start: number; end: number } | null }[];
}

export interface GridStatus {
  ready: boolean;
  text: string;
}

/** Layers as ranges: [0,1,2,5] → "0..2, 5". */
function layerRanges(layers: number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < layers.length; i++) {
    let j = i;
    while (j + 1 < layers.length && layers[j + 1] === layers[j] + 1) j++;
    parts.push(j > i ? `${layers[i]}..${layers[j]}` : `${layers[i]}`);
    i = j;
  }
  return parts.join(', ');
}

export function gridStatus(answer: PeersAnswer, origin: string): GridStatus {
  const donors = answer.peers.filter((p) => p.role === 'donor');
  const serving = donors.filter((p) => p.serving).length;
  const preparing = donors.length - serving;
  const uncovered = answer.coverage.flatMap((c, layer) => (c === 0 ? [layer] : []));
  const join = `open ${origin}/donor/ in a browser tab, or run \`npx infermesh donate ${origin}\``;
  if (donors.length === 0) return { ready: false, text: `Waiting for donors: none has joined this grid yet. To add one, ${join}.` };
  if (uncovered.length > 0) {
    const getting = preparing > 0 ? `${preparing} donor${preparing === 1 ? ' is' : 's are'} still measuring, fetching or loading layers` : `no donor serves them; ${join}`;
    return { ready: false, text: `Waiting for layers ${layerRanges(uncovered)} of 0..${answer.coverage.length - 1}: ${getting}.` };
  }
  return { ready: true, text: `Ready: ${serving} donor${serving === 1 ? '' : 's'} serve${serving === 1 ? 's' : ''} all ${answer.coverage.length} layers${preparing > 0 ? ` (${preparing} more getting ready)` : ''}.` };
}
