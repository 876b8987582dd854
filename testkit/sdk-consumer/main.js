// An app's page: window.generate(url, prompt, maxTokens) resolves to the greedy text.
import { connect, UsageError } from '@infermesh/sdk';

window.generate = async (url, prompt, maxTokens) => {
  const grid = await connect({ url });
  let text = '';
  for await (const token of grid.generate(prompt, { maxTokens, temperature: 0 })) {
    text += token.text;
    document.getElementById('out').textContent = text;
  }
  await grid.close();
  return text;
};
window.sdkLoaded = typeof UsageError === 'function';
