// The task's entry point: start the git-relay binary built for this agent.
//
// The agent can only run tasks through Node (its `Process` handler is
// Windows-only and passes no inputs), so this file is a launcher and nothing
// more: all of the task's logic lives in `git-relay task`, which reads the
// INPUT_* and ENDPOINT_* variables itself.
//
// It deliberately loads no npm package. azure-pipelines-task-lib, on load,
// moves INPUT_*, ENDPOINT_AUTH_* and SECRET_* out of process.env, so the
// binary would start without its inputs; and every dependency is code to
// audit and ship in the .vsix.
'use strict';

const childProcess = require('child_process');
const fs = require('fs');
const path = require('path');

// Node's names for the platforms we ship, mapped to our folder names.
const OS_NAMES = { linux: 'linux', win32: 'win', darwin: 'darwin' };
const ARCH_NAMES = { x64: 'x64', arm64: 'arm64' };

// Logging-command escaping (as in src/pipelines/vso.rs): the message of a
// command may not hold a raw CR or LF, and `%` is written as `%AZP25`.
function escapeMessage(text) {
  return String(text).replace(/%/g, '%AZP25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

// Reports a failure the way the agent understands it: an error on the
// run's summary page, and the task's result.
function fail(message) {
  const escaped = escapeMessage(message);
  process.stdout.write(`##vso[task.logissue type=error;]${escaped}\n`);
  process.stdout.write(`##vso[task.complete result=Failed;]${escaped}\n`);
}

function binaryPath() {
  const os = OS_NAMES[process.platform];
  const arch = ARCH_NAMES[process.arch];
  const folder = `${os}-${arch}`;
  const file = path.join(__dirname, 'bin', folder, process.platform === 'win32' ? 'git-relay.exe' : 'git-relay');
  if (!os || !arch || !fs.existsSync(file)) {
    const shipped = fs.existsSync(path.join(__dirname, 'bin')) ? fs.readdirSync(path.join(__dirname, 'bin')).join(', ') : 'none';
    fail(
      `git-relay has no binary for this agent (${process.platform}-${process.arch}); this task ships: ${shipped}. ` +
        'Run the task on one of those agents, or use the plain git-relay binary in a script step.'
    );
    return null;
  }
  return file;
}

function main() {
  const file = binaryPath();
  if (!file) {
    return;
  }
  if (process.platform !== 'win32') {
    // A .vsix is a zip: the executable bit does not survive packaging.
    try {
      fs.chmodSync(file, 0o755);
    } catch (err) {
      // A read-only task folder may still hold an executable file; if not,
      // spawn reports it below.
    }
  }
  const child = childProcess.spawn(file, ['task'], { stdio: 'inherit', env: process.env, windowsHide: true });
  // The agent cancels a task by signalling this process; pass it on so the
  // binary can stop between requests instead of being killed mid-push.
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => child.kill(signal));
  }
  child.on('error', (err) => {
    fail(`could not start ${file}: ${err.message}`);
    process.exitCode = 1;
  });
  child.on('exit', (code, signal) => {
    if (signal) {
      fail(`git-relay was stopped by ${signal}`);
      process.exitCode = 1;
    } else {
      process.exitCode = code === null ? 1 : code;
    }
  });
}

main();
