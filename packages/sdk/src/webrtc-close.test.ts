/**
 * A Node process whose peer connection closed with a data channel still connecting exits
 * (webrtc-close.ts); without the fix node-datachannel keeps it alive. Each case is a child
 * process: the offer is made (the channel is connecting), the connection closed, and nothing
 * else is left to run.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const script = (fix: boolean) => `
  import { RTCPeerConnection } from 'node-datachannel/polyfill';
  ${fix ? `(await import(${JSON.stringify(new URL('./webrtc-close.ts', import.meta.url).href)})).closeChannelsWithConnection();` : ''}
  const pc = new RTCPeerConnection();
  const channel = pc.createDataChannel('init');
  await pc.setLocalDescription(await pc.createOffer());
  pc.close();
  console.log(channel.label);
`;

/** Whether the child exited by itself within `ms` (it is killed otherwise). */
function exitsWithin(source: string, ms: number): Promise<boolean> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', source], { cwd: new URL('.', import.meta.url), stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve(false);
    }, ms);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve(code === 0);
    });
  });
}

describe("a peer connection's close() in Node", () => {
  it('lets the process exit when a channel made on it was still connecting', async () => {
    expect(await exitsWithin(script(true), 10_000)).toBe(true);
  });

  it('held the process without the fix (node-datachannel 0.33.4; drop the fix once this fails)', async () => {
    expect(await exitsWithin(script(false), 3_000)).toBe(false);
  });
});
