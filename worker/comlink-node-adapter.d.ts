// comlink ships its Node adapter as dist/esm/node-adapter.mjs but types it in node-adapter.d.ts,
// which TypeScript does not pair with the .mjs file; this restates that declaration.
/* eslint-disable @typescript-eslint/no-explicit-any -- restating a third-party declaration */
declare module 'comlink/dist/esm/node-adapter.mjs' {
  import type { Endpoint } from 'comlink';
  interface NodeEndpoint {
    postMessage(message: any, transfer?: any[]): void;
    on(type: string, listener: (...args: any[]) => void, options?: object): void;
    off(type: string, listener: (...args: any[]) => void, options?: object): void;
    start?: () => void;
  }
  export default function nodeEndpoint(nep: NodeEndpoint): Endpoint;
}
