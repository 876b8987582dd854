#!/usr/bin/env node
// The `infermesh` command. Node 24 runs the TypeScript sources directly (type stripping),
// so there is no build step between a change and the command.
import '../cli/main.ts';
