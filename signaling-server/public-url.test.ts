import { describe, expect, it } from 'vitest';
import { parsePublicUrl, relayMultiaddr } from './public-url.ts';

describe('a public URL', () => {
  it('gives the relay address peers dial: wss on 443 for https, the port as written otherwise', () => {
    expect(relayMultiaddr(parsePublicUrl('https://grid.example.org'))).toBe('/dns4/grid.example.org/tcp/443/wss');
    expect(relayMultiaddr(parsePublicUrl('https://grid.example.org:8443/'))).toBe('/dns4/grid.example.org/tcp/8443/wss');
    expect(relayMultiaddr(parsePublicUrl('https://203.0.113.7'))).toBe('/ip4/203.0.113.7/tcp/443/wss');
    expect(relayMultiaddr(parsePublicUrl('https://[2001:db8::1]:9000'))).toBe('/ip6/2001:db8::1/tcp/9000/wss');
    expect(relayMultiaddr(parsePublicUrl('http://127.0.0.1:8470'))).toBe('/ip4/127.0.0.1/tcp/8470/ws');
    expect(relayMultiaddr(parsePublicUrl('http://localhost:8470'))).toBe('/dns4/localhost/tcp/8470/ws');
  });

  it('is refused by name when no remote visitor could use it', () => {
    const refused: [string, RegExp][] = [
      ['grid.example.org', /is not a URL/],
      ['ftp://grid.example.org', /must be an https:\/\/ URL, not ftp:/],
      ['http://grid.example.org', /must be https:\/\/: a page loaded over plain http from another machine has no secure context/],
      ['https://user:pw@grid.example.org', /must not carry credentials/],
      ['https://grid.example.org/grid/', /must be an origin only .* without the path \/grid\//],
      ['https://grid.example.org/?a=1', /without a query or fragment/],
    ];
    for (const [value, message] of refused) expect(() => parsePublicUrl(value), value).toThrow(expect.objectContaining({ name: 'PublicUrlError', message: expect.stringMatching(message) }));
  });
});
