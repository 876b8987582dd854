/**
 * The CPU side of a device's identity, for the handshake's signature when it has no WebGPU
 * adapter. Browsers do not tell the CPU model, so a browser host is its core count and platform.
 * The Node variant, which reads node:os, is in node-host.ts.
 */
export interface HostInfo {
  runtime: 'browser' | 'node';
  /** e.g. "AMD EPYC 7B13"; absent in browsers */
  cpuModel?: string;
  /** logical cores available to this process (navigator.hardwareConcurrency in a browser) */
  cores: number;
  /** e.g. "linux-x64" in Node, navigator.platform ("Linux x86_64") in a browser */
  platform: string;
}

/** The slice of `navigator` (WorkerNavigator in a Web Worker) a browser host is read from. */
export interface NavigatorLike {
  hardwareConcurrency?: number;
  platform?: string;
  userAgentData?: { platform?: string };
}

export function browserHost(navigator: NavigatorLike): HostInfo {
  return {
    runtime: 'browser',
    cores: navigator.hardwareConcurrency ?? 1,
    platform: navigator.userAgentData?.platform || navigator.platform || 'unknown',
  };
}
