/**
 * Chat messages → the one prompt string a model generates from. Used by the OpenAI-compatible
 * layer (shared/openai/completions.ts), which the SDK (browser, Node) and the server's gateway
 * share. Hugging Face packages carry a tokenizer_config.json with a Jinja `chat_template`;
 * we render it with @huggingface/jinja and the variables transformers' apply_chat_template
 * passes (messages, bos_token, eos_token, unk_token, pad_token, add_generation_prompt).
 *
 * Packages without a template (llama2.c story models were never trained on chats) get the
 * plain fallback below, a deliberate choice: each message as "role: content\n", then
 * "assistant:", which reads like a script the model can continue.
 */
import { Template } from '@huggingface/jinja';
import { TokenizerError, UsageError } from '../errors.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';
import { describeValue as describe } from './params.ts';

export type ChatRole = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

export type ChatRenderer = (messages: ChatMessage[]) => string;

const ROLES: readonly string[] = ['system', 'user', 'assistant'];

/**
 * Checks `messages` as an OpenAI request sends them and returns plain {role, content} pairs.
 * Also accepted, because OpenAI's SDKs send them: content as an array of text parts (joined),
 * and role 'developer' (OpenAI's newer name for 'system'). Errors name the field at fault.
 */
export function parseChatMessages(value: unknown, field = 'messages', maxMessages = Infinity): ChatMessage[] {
  if (!Array.isArray(value)) throw new UsageError(`must be an array of {role, content} messages, got ${describe(value)}`, { source: field });
  if (value.length === 0) throw new UsageError('must hold at least one message', { source: field });
  if (value.length > maxMessages) throw new UsageError(`holds ${value.length} messages; at most ${maxMessages} fit the model's context`, { source: field });
  return value.map((m: unknown, i) => {
    const at = `${field}[${i}]`;
    if (m === null || typeof m !== 'object' || Array.isArray(m)) throw new UsageError(`must be a {role, content} object, got ${describe(m)}`, { source: at });
    const { role, content } = m as { role?: unknown; content?: unknown };
    const normalRole = role === 'developer' ? 'system' : role;
    if (typeof normalRole !== 'string' || !ROLES.includes(normalRole)) {
      throw new UsageError(`must be one of ${ROLES.join(', ')}, got ${describe(role)}`, { source: `${at}.role` });
    }
    return { role: normalRole as ChatRole, content: contentText(content, `${at}.content`) };
  });
}

function contentText(content: unknown, field: string): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) throw new UsageError(`must be a string, got ${describe(content)}`, { source: field });
  return content
    .map((part: unknown, j) => {
      const p = part as { type?: unknown; text?: unknown } | null;
      if (p?.type !== 'text') throw new UsageError(`only text parts are supported, got ${describe(p?.type ?? part)}`, { source: `${field}[${j}].type` });
      if (typeof p.text !== 'string') throw new UsageError(`must be a string, got ${describe(p.text)}`, { source: `${field}[${j}].text` });
      return p.text;
    })
    .join('');
}

/** The fallback for packages without a chat template; see the module comment. */
export function renderPlainChat(messages: ChatMessage[]): string {
  return `${messages.map((m) => `${m.role}: ${m.content}\n`).join('')}assistant:`;
}

export interface ChatRendererOptions {
  /**
   * The tokenizer puts BOS in front of every prompt it encodes (Llama-style). Templates that
   * write `{{ bos_token }}` themselves would then give two; transformers avoids that by
   * encoding the rendered chat without special tokens, we by dropping the template's leading
   * BOS text. See tokenizerAddsBos().
   */
  tokenizerAddsBos?: boolean;
  /** For error messages, e.g. the package's tokenizer_config.json path. */
  source?: string;
}

/**
 * A renderer for a package's tokenizer config (the parsed tokenizer_config.json), or the
 * plain fallback when there is no config or it has no `chat_template`.
 * Throws TokenizerError when the template does not parse (a broken package, not a bad request).
 */
export function createChatRenderer(tokenizerConfig?: object | null, options: ChatRendererOptions = {}): ChatRenderer {
  const config = (tokenizerConfig ?? {}) as Record<string, unknown>;
  const source = options.source ?? 'tokenizer_config.json';
  const text = pickTemplate(config.chat_template, source);
  if (text === undefined) return (messages) => renderPlainChat(parseChatMessages(messages));
  let template: Template;
  try {
    template = new Template(text);
  } catch (err) {
    throw new TokenizerError(`chat_template does not parse: ${(err as Error).message}`, { source, cause: err });
  }
  const special = {
    bos_token: tokenText(config.bos_token),
    eos_token: tokenText(config.eos_token),
    unk_token: tokenText(config.unk_token),
    pad_token: tokenText(config.pad_token),
  };
  return (messages) => {
    const checked = parseChatMessages(messages);
    let prompt: string;
    try {
      prompt = template.render({ ...special, messages: checked, add_generation_prompt: true });
    } catch (err) {
      // Templates call raise_exception() on chats they refuse (roles not alternating, a
      // system message the model has no slot for): the request is at fault.
      throw new UsageError(`the model's chat template refused them: ${(err as Error).message}`, { source: 'messages', cause: err });
    }
    if (options.tokenizerAddsBos && special.bos_token && prompt.startsWith(special.bos_token)) prompt = prompt.slice(special.bos_token.length);
    return prompt;
  };
}

/** Whether `tokenizer.encode` puts BOS in front of a prompt by itself. */
export function tokenizerAddsBos(tokenizer: Pick<Tokenizer, 'bosId' | 'encode'>): boolean {
  return tokenizer.bosId !== null && tokenizer.encode('x')[0] === tokenizer.bosId;
}

/** `chat_template` is a string, or (newer configs) a list of named templates: take 'default'. */
function pickTemplate(value: unknown, source: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const named = value as { name?: unknown; template?: unknown }[];
    const chosen = named.find((t) => t?.name === 'default') ?? named[0];
    if (typeof chosen?.template === 'string') return chosen.template;
  }
  throw new TokenizerError('chat_template must be a string or a list of {name, template}', { source });
}

/** Special tokens may be AddedToken objects ({content: '<s>', ...}) in tokenizer_config.json. */
function tokenText(value: unknown): string {
  if (typeof value === 'string') return value;
  const content = (value as { content?: unknown } | null)?.content;
  return typeof content === 'string' ? content : '';
}
