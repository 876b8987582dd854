// An app's Node script: node generate.mjs <grid url> <prompt> <max tokens> [runtime]
// Prints one JSON line: the greedy text, the Node version and the download progress seen.
import { connect } from '@infermesh/sdk';

const [url, prompt, maxTokens, runtime] = process.argv.slice(2);
let progress = { loaded: 0, total: 0 };
const grid = await connect({ url, runtime, onProgress: (p) => (progress = p) });
let text = '';
for await (const token of grid.generate(prompt, { maxTokens: Number(maxTokens), temperature: 0 })) text += token.text;
await grid.close();
console.log(JSON.stringify({ text, node: process.version, progress }));
