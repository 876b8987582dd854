/** Rendering chats with a package's Jinja chat_template, the plain fallback, and message checks. */
import { describe, expect, it } from 'vitest';
import { createChatRenderer, parseChatMessages, renderPlainChat, tokenizerAddsBos } from './chat-template.ts';

/** TinyLlama-chat's (Zephyr) template, as its tokenizer_config.json ships it. */
const ZEPHYR =
  "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";

/** Llama 2 chat's template (abridged): BOS per turn, system folded into the first user turn, strict alternation. */
const LLAMA2 =
  "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = '<<SYS>>\\n' + messages[0]['content'] + '\\n<</SYS>>\\n\\n' %}{% else %}{% set loop_messages = messages %}{% set system_message = '' %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 %}{% set content = system_message + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

const llama2Config = {
  chat_template: LLAMA2,
  bos_token: { content: '<s>', lstrip: false, normalized: false, rstrip: false, single_word: false },
  eos_token: '</s>',
};

describe('createChatRenderer', () => {
  it("renders a package's template with eos_token and the generation prompt, as transformers does", () => {
    const render = createChatRenderer({ chat_template: ZEPHYR, eos_token: '</s>' });
    expect(render([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }])).toBe(
      '<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\n',
    );
  });

  it('takes bos_token from an AddedToken object and folds the system message as Llama 2 does', () => {
    const render = createChatRenderer(llama2Config);
    expect(render([{ role: 'system', content: 'Be kind.' }, { role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello' }, { role: 'user', content: 'Bye' }])).toBe(
      '<s>[INST] <<SYS>>\nBe kind.\n<</SYS>>\n\nHi [/INST] Hello </s><s>[INST] Bye [/INST]',
    );
  });

  it('drops the leading BOS text when the tokenizer adds BOS itself, so the model sees one', () => {
    const render = createChatRenderer(llama2Config, { tokenizerAddsBos: true });
    expect(render([{ role: 'user', content: 'Hi' }])).toBe('[INST] Hi [/INST]');
  });

  it("turns a template's raise_exception into a UsageError about the messages", () => {
    const render = createChatRenderer(llama2Config);
    expect(() => render([{ role: 'assistant', content: 'Hi' }])).toThrow(
      expect.objectContaining({ name: 'UsageError', source: 'messages', message: expect.stringMatching(/roles must alternate/) }),
    );
  });

  it("picks the 'default' template from a list of named templates", () => {
    const render = createChatRenderer({ chat_template: [{ name: 'tool_use', template: 'TOOLS' }, { name: 'default', template: '{{ messages[0].content }}!' }] });
    expect(render([{ role: 'user', content: 'Hi' }])).toBe('Hi!');
  });

  it('refuses a template that does not parse with a TokenizerError naming the config', () => {
    expect(() => createChatRenderer({ chat_template: '{% for %}' }, { source: 'pkg/tokenizer_config.json' })).toThrow(
      expect.objectContaining({ name: 'TokenizerError', source: 'pkg/tokenizer_config.json' }),
    );
  });

  it('falls back to "role: content" lines and "assistant:" without a template (llama2.c story models)', () => {
    const render = createChatRenderer(undefined);
    expect(render([{ role: 'system', content: 'Tell stories.' }, { role: 'user', content: 'Once upon a time' }])).toBe(
      'system: Tell stories.\nuser: Once upon a time\nassistant:',
    );
    expect(createChatRenderer({ eos_token: '</s>' })([{ role: 'user', content: 'x' }])).toBe(renderPlainChat([{ role: 'user', content: 'x' }]));
  });
});

describe('parseChatMessages', () => {
  it('accepts text parts and the developer role as OpenAI SDKs send them', () => {
    expect(parseChatMessages([{ role: 'developer', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }], name: 'x' }])).toEqual([{ role: 'system', content: 'ab' }]);
  });

  const bad: [unknown, string, RegExp][] = [
    ['hello', 'messages', /must be an array/],
    [[], 'messages', /at least one message/],
    [[null], 'messages[0]', /must be a \{role, content\} object/],
    [[{ role: 'user', content: 'a' }, { role: 'tool', content: 'b' }], 'messages[1].role', /one of system, user, assistant, got "tool"/],
    [[{ role: 'user' }], 'messages[0].content', /must be a string, got nothing/],
    [[{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }], 'messages[0].content[0].type', /only text parts/],
  ];
  for (const [value, field, message] of bad) {
    it(`refuses ${JSON.stringify(value)} naming ${field}`, () => {
      expect(() => parseChatMessages(value)).toThrow(expect.objectContaining({ name: 'UsageError', source: field, message: expect.stringMatching(message) }));
    });
  }
});

describe('tokenizerAddsBos', () => {
  it('is true when encode puts BOS first, false otherwise', () => {
    expect(tokenizerAddsBos({ bosId: 1, encode: () => [1, 5] })).toBe(true);
    expect(tokenizerAddsBos({ bosId: 1, encode: () => [5] })).toBe(false);
    expect(tokenizerAddsBos({ bosId: null, encode: () => [5] })).toBe(false);
  });
});
