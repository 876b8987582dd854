/**
 * Errors that cross a comlink boundary (page <-> Web Worker, main thread <-> worker_threads)
 * keep their class: comlink alone rebuilds every error as a plain Error, so callers could no
 * longer branch on `err.name`. Registering this handler on both sides of the boundary
 * serialises an InfermeshError's name, message parts and stack, and rebuilds the same class.
 */
import { CheckpointFormatError, InfermeshError, ModelConfigError, PackageError, TokenizerError, UsageError } from '../errors.ts';
import { FrameError } from '../protocol/frame.ts';
import { UnknownRequestError } from '../runtime/stage.ts';
import { DeviceLostError, EngineNotLoadedError } from './errors.ts';

type ErrorClass = new (shortMessage: string, options?: { source?: string; details?: string }) => InfermeshError;

const known = new Map<string, ErrorClass>(
  [
    InfermeshError,
    CheckpointFormatError,
    ModelConfigError,
    TokenizerError,
    PackageError,
    UsageError,
    FrameError,
    UnknownRequestError,
    EngineNotLoadedError,
    DeviceLostError,
  ].map(
    (c) => [new c('').name, c] as [string, ErrorClass],
  ),
);

interface SerializedError {
  isInfermeshError: true;
  name: string;
  shortMessage: string;
  source?: string;
  details?: string;
  stack?: string;
}

interface TransferHandler {
  canHandle(value: unknown): boolean;
  serialize(value: unknown): [unknown, Transferable[]];
  deserialize(value: unknown): unknown;
}

/** Wraps comlink's built-in 'throw' handler; call once per realm with comlink's transferHandlers. */
export function installErrorTransfer(transferHandlers: Map<string, TransferHandler>): void {
  const base = transferHandlers.get('throw');
  if (!base || (base as { infermesh?: boolean }).infermesh) return;
  const handler: TransferHandler & { infermesh: true } = {
    infermesh: true,
    canHandle: (value) => base.canHandle(value),
    serialize(thrown) {
      const value = (thrown as { value: unknown }).value;
      if (value instanceof InfermeshError) {
        const serialized: SerializedError = {
          isInfermeshError: true,
          name: value.name,
          shortMessage: value.shortMessage,
          source: value.source,
          details: value.details,
          stack: value.stack,
        };
        return [serialized, []];
      }
      return base.serialize(thrown);
    },
    deserialize(serialized) {
      const s = serialized as SerializedError;
      if (s?.isInfermeshError) {
        const Class = known.get(s.name) ?? InfermeshError;
        const err = new Class(s.shortMessage, { source: s.source, details: s.details });
        if (!known.has(s.name)) err.name = s.name;
        if (s.stack) err.stack = s.stack;
        throw err;
      }
      return base.deserialize(serialized);
    },
  };
  transferHandlers.set('throw', handler);
}
