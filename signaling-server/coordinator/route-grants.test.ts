import { describe, expect, it } from 'vitest';
import { createRouteGrants } from './route-grants.ts';

describe('route grants', () => {
  it('knows which client was routed through which first stage, and nothing else', () => {
    const grants = createRouteGrants();
    grants.grant('client-a', 'stage-1');
    expect(grants.granted('client-a', 'stage-1')).toBe(true);
    expect(grants.granted('client-a', 'stage-2')).toBe(false);
    expect(grants.granted('client-b', 'stage-1')).toBe(false);
  });

  it('forgets the least recently granted pair beyond its bound', () => {
    const grants = createRouteGrants({ max: 2 });
    grants.grant('a', 's');
    grants.grant('b', 's');
    grants.grant('a', 's'); // granted again: now the most recent
    grants.grant('c', 's');
    expect(['a', 'b', 'c'].map((c) => grants.granted(c, 's'))).toEqual([true, false, true]);
  });
});
