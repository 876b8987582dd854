import { describe, expect, it } from 'vitest';
import { createDonorStatus, statusLine } from './donor-status.ts';
import { gridOrigin } from './donate-command.ts';

/** A stream that keeps what is written, not a terminal. */
function log() {
  const lines: string[] = [];
  return { lines, stream: { isTTY: false, write: (s: string) => lines.push(s) } as unknown as NodeJS.WriteStream };
}

describe('a terminal donor’s status', () => {
  it('says in one line what the donor does, as its page would', () => {
    const base = { requestsServed: 3, tokensServed: 40, tokensPerSecond: 12.34, peers: 2 };
    expect(statusLine({ ...base, status: 'connecting' })).toBe('joining the grid');
    expect(statusLine({ ...base, status: 'downloading', layers: { start: 0, end: 3 }, nLayers: 5, download: { total: 10, verified: 4, resumed: 1, fromPeers: 2, fromWebSeed: 2, badPieces: 0, dropped: [], bytes: 0 } })).toBe('downloading layers 0..2 of 5 (5/10 pieces)');
    expect(
      statusLine({ ...base, status: 'serving', layers: { start: 3, end: 5 }, nLayers: 5, device: { label: 'linux-x64, 2 cores (native CPU)', executionProvider: 'cpu', msPerLayer: 0.5 }, threads: { threads: 2, cores: 2, isolated: true }, trust: { committed: 3, challengedSteps: 1, proofBytes: 10, refused: 0 } }),
    ).toBe('serving layers 3..4 of 5 on linux-x64, 2 cores (native CPU), 2 threads, 0.50 ms/layer · 3 requests · 40 tokens · 12.3 tok/s · 2 peers · 3 committed');
  });

  it('off a terminal, logs each change of status, and a serving line at most once a minute', () => {
    const { lines, stream } = log();
    let now = 0;
    const status = createDonorStatus('donor', { stream, now: () => now });
    status.update({ status: 'benchmarking' });
    status.update({ status: 'serving', layers: { start: 0, end: 5 } });
    status.update({ tokensServed: 1 });
    now = 61_000;
    status.update({ tokensServed: 2 });
    status.error('the coordinator refused');
    expect(lines.map((l) => l.split(' · ')[0].trim())).toEqual(['donor: measuring this machine', 'donor: serving layers 0..4', 'donor: serving layers 0..4', 'donor: error: the coordinator refused']);
    expect(lines[2]).toContain('· 2 tokens');
  });
});

describe('the grid URL a donor types', () => {
  it('is taken as its origin, https when no scheme is given', () => {
    expect(gridOrigin('grid.example.org')).toBe('https://grid.example.org');
    expect(gridOrigin('http://127.0.0.1:8470/donor/')).toBe('http://127.0.0.1:8470');
  });

  it('is refused by name when it is not an http(s) URL', () => {
    expect(() => gridOrigin('ftp://grid.example.org')).toThrow(/<url>: must be an http\(s\):\/\/ URL, got ftp:/);
    expect(() => gridOrigin('https://')).toThrow(/<url>: is not a URL/);
  });
});
