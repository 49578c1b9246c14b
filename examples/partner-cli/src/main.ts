#!/usr/bin/env node
// Entry point of `partner-cli`: the real process's arguments, environment and output streams.
import { run } from './cli.ts';

process.exitCode = await run(process.argv.slice(2), process.env, {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
});
