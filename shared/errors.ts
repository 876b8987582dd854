/**
 * Every failure infermesh reports is an InfermeshError with a stable `name`.
 * Callers branch on `err.name`, never on message text (the js-libp2p convention);
 * `shortMessage` is the one line a person reads, `cause` keeps the chain for a developer.
 */
export interface InfermeshErrorOptions {
  /** The file, URL or input the problem is in, printed before the message. */
  source?: string;
  details?: string;
  cause?: unknown;
}

export class InfermeshError extends Error {
  override name = 'InfermeshError';
  readonly shortMessage: string;
  readonly source?: string;
  readonly details?: string;

  constructor(shortMessage: string, options: InfermeshErrorOptions = {}) {
    super(options.source ? `${options.source}: ${shortMessage}` : shortMessage, { cause: options.cause });
    this.shortMessage = shortMessage;
    this.source = options.source;
    this.details = options.details;
  }
}

/** A checkpoint file whose bytes do not follow its format (truncated, lying header, bad dtype). */
export class CheckpointFormatError extends InfermeshError {
  override name = 'CheckpointFormatError';
}

/** A model config we cannot compile: unknown architecture, inconsistent shapes, unsupported options. */
export class ModelConfigError extends InfermeshError {
  override name = 'ModelConfigError';
}

/** A tokenizer that is missing or unreadable. */
export class TokenizerError extends InfermeshError {
  override name = 'TokenizerError';
}

/** A model package on disk or in memory that does not match its manifest. */
export class PackageError extends InfermeshError {
  override name = 'PackageError';
}

/** Bad arguments to a command or an API call (prompt too long, unknown preset, bad number). */
export class UsageError extends InfermeshError {
  override name = 'UsageError';
}
