import { describe, expect, it } from 'vitest';
import { gridStatus } from './grid-status.ts';

const ORIGIN = 'https://grid.example.org';
const donor = (serving?: { start: number; end: number }) => ({ role: 'donor', serving, assignment: serving });

describe('the chat page’s word on the grid', () => {
  it('says there is no donor yet, and how to add one', () => {
    expect(gridStatus({ coverage: [0, 0, 0], peers: [{ role: 'client' }] }, ORIGIN)).toEqual({
      ready: false,
      text: 'Waiting for donors: none has joined this grid yet. To add one, open https://grid.example.org/donor/ in a browser tab, or run `npx infermesh donate https://grid.example.org`.',
    });
  });

  it('names the layers no one serves yet, and whether donors are getting ready', () => {
    expect(gridStatus({ coverage: [1, 1, 0, 0, 1, 0], peers: [donor({ start: 0, end: 2 }), donor({ start: 4, end: 5 }), donor()] }, ORIGIN).text).toBe(
      'Waiting for layers 2..3, 5 of 0..5: 1 donor is still measuring, fetching or loading layers.',
    );
    expect(gridStatus({ coverage: [1, 0], peers: [donor({ start: 0, end: 1 })] }, ORIGIN).text).toMatch(/^Waiting for layers 1 of 0\.\.1: no donor serves them; open/);
  });

  it('is ready when every layer is served', () => {
    expect(gridStatus({ coverage: [2, 1], peers: [donor({ start: 0, end: 2 }), donor({ start: 0, end: 1 }), donor()] }, ORIGIN)).toEqual({ ready: true, text: 'Ready: 2 donors serve all 2 layers (1 more getting ready).' });
  });
});
