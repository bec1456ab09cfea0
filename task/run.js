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

// How long a cancelled binary has to stop on its own on Windows before it
// is terminated (the agent itself waits longer before killing the tree).
const WINDOWS_GRACE_MS = 10000;

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

// The binary folders to try, best first. Windows on Arm and macOS on Apple
// silicon run x64 programs through their own emulation, so a task without
// a native arm64 build still runs there, more slowly.
function folders(platform, arch) {
  const os = OS_NAMES[platform];
  const native = ARCH_NAMES[arch];
  if (!os || !native) {
    return [];
  }
  const list = [`${os}-${native}`];
  if (native === 'arm64' && (platform === 'win32' || platform === 'darwin')) {
    list.push(`${os}-x64`);
  }
  return list;
}

// The binary for this agent, or null after reporting that there is none.
function binaryPath(dir, platform, arch, fsys) {
  const name = platform === 'win32' ? 'git-relay.exe' : 'git-relay';
  for (const folder of folders(platform, arch)) {
    const file = path.join(dir, 'bin', folder, name);
    if (fsys.existsSync(file)) {
      return file;
    }
  }
  const bin = path.join(dir, 'bin');
  const shipped = fsys.existsSync(bin) ? fsys.readdirSync(bin).join(', ') : 'none';
  fail(
    `git-relay has no binary for this agent (${platform}-${arch}); this task ships: ${shipped}. ` +
      'Run the task on one of those agents, or use the plain git-relay binary in a script step.'
  );
  return null;
}

// The file to run: `file` made executable, since a .vsix is a zip and the
// executable bit does not survive packaging. Where the task folder is
// read-only to this user (an agent whose tasks folder was installed by
// another account), the binary is copied into the job's temporary
// directory and made executable there.
function executable(file, env, fsys) {
  try {
    fsys.chmodSync(file, 0o755);
    return file;
  } catch (err) {
    try {
      fsys.accessSync(file, fsys.constants.X_OK);
      return file;
    } catch (notExecutable) {
      // Copied below.
    }
    const temp = env.AGENT_TEMPDIRECTORY;
    if (!temp) {
      return file; // spawn reports why it cannot run
    }
    const copy = path.join(temp, `git-relay-${process.pid}`);
    try {
      fsys.copyFileSync(file, copy);
      fsys.chmodSync(copy, 0o755);
      process.stdout.write(`##[debug]${escapeMessage(`cannot make ${file} executable (${err.message}); running a copy in ${temp}`)}\n`);
      return copy;
    } catch (copyErr) {
      return file;
    }
  }
}

// Passes the agent's cancel on to the binary, so that it stops between
// requests instead of being killed mid-push. On Linux and macOS the agent
// signals this process, and the signal is forwarded. On Windows the agent
// sends Ctrl+C (then Ctrl+Break) to the console, which reaches the binary
// too since it shares this one; `child.kill` there would be
// TerminateProcess, no stop at all, so it is kept for a binary that has not
// ended after a grace period.
function forwardCancel(child, platform, proc, graceMs) {
  const signals = platform === 'win32' ? ['SIGINT', 'SIGBREAK'] : ['SIGINT', 'SIGTERM'];
  for (const signal of signals) {
    proc.on(signal, () => {
      if (platform !== 'win32') {
        child.kill(signal);
        return;
      }
      const timer = setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill();
        }
      }, graceMs);
      if (timer.unref) {
        timer.unref();
      }
    });
  }
}

function main() {
  const found = binaryPath(__dirname, process.platform, process.arch, fs);
  if (!found) {
    return;
  }
  const file = process.platform === 'win32' ? found : executable(found, process.env, fs);
  const child = childProcess.spawn(file, ['task'], { stdio: 'inherit', env: process.env, windowsHide: true });
  forwardCancel(child, process.platform, process, WINDOWS_GRACE_MS);
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

if (require.main === module) {
  main();
} else {
  // Required by the wrapper's tests (tests/support/task/run_js_test.js),
  // which drive the platform choices no test agent has.
  module.exports = { folders, binaryPath, executable, forwardCancel };
}
