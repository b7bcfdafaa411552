// Entry of the single executable (`npm run build:cli`): the CLI bundled into
// one CommonJS file and run by the Node 24 embedded in the executable, so no
// version check and no Node on PATH are needed.
import './cli.ts';
