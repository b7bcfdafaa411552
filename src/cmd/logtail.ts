#!/usr/bin/env node
// Entry of `logtail` / `kubectl-logtail`. It imports nothing but the version
// check before loading the CLI: static imports are evaluated first, so an old
// Node would otherwise fail inside a dependency before it could say why.
import { checkNodeVersion } from './node-version.ts';

checkNodeVersion('kubectl-logtail');
await import('./cli.ts');
