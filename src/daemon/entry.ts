// dist/jaulad.cjs: jaulad in its own bundle, so that the CLI's bundle stays small. Run by
// bin/jaulad.cjs and by `jaula daemon`, which call daemonMain.
export { daemonMain } from './main.js';
