// Tests of the task's Node wrapper (task/run.js) for what no test agent
// can do for real: other platforms' binary choice, a task folder where
// chmod fails (the tests run as root, for whom it never does), and a
// Windows cancel. Run by tests/task.rs as `node run_js_test.js <run.js>`;
// the wrapper's own run is tested there through real task runs.
//
// The file system is a real temporary directory; only the calls a case is
// about are replaced.
'use strict';

const assert = require('assert');
const events = require('events');
const fs = require('fs');
const os = require('os');
const path = require('path');

const wrapper = require(path.resolve(process.argv[2]));

// Temporary directories made by the cases, removed at the end.
const made = [];

function tempDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
}

// A task folder holding a binary in each of `folders`.
function taskWith(folders) {
  const dir = tempDir('git-relay-runjs-');
  for (const folder of folders) {
    fs.mkdirSync(path.join(dir, 'bin', folder), { recursive: true });
    const name = folder.startsWith('win-') ? 'git-relay.exe' : 'git-relay';
    fs.writeFileSync(path.join(dir, 'bin', folder, name), '#!/bin/sh\necho ran\n');
  }
  return dir;
}

// Runs `f` with stdout captured; returns what it wrote and its result.
function captured(f) {
  const write = process.stdout.write;
  let out = '';
  process.stdout.write = (chunk) => {
    out += chunk;
    return true;
  };
  try {
    return { result: f(), out };
  } finally {
    process.stdout.write = write;
  }
}

const cases = {
  'native binaries come first'() {
    const dir = taskWith(['win-x64', 'win-arm64', 'darwin-x64', 'darwin-arm64', 'linux-x64', 'linux-arm64']);
    assert.strictEqual(wrapper.binaryPath(dir, 'win32', 'arm64', fs), path.join(dir, 'bin/win-arm64/git-relay.exe'));
    assert.strictEqual(wrapper.binaryPath(dir, 'darwin', 'arm64', fs), path.join(dir, 'bin/darwin-arm64/git-relay'));
    assert.strictEqual(wrapper.binaryPath(dir, 'linux', 'x64', fs), path.join(dir, 'bin/linux-x64/git-relay'));
  },

  'windows and macos on arm64 fall back to x64'() {
    const dir = taskWith(['win-x64', 'darwin-x64', 'linux-x64']);
    assert.strictEqual(wrapper.binaryPath(dir, 'win32', 'arm64', fs), path.join(dir, 'bin/win-x64/git-relay.exe'));
    assert.strictEqual(wrapper.binaryPath(dir, 'darwin', 'arm64', fs), path.join(dir, 'bin/darwin-x64/git-relay'));
  },

  'linux on arm64 does not run an x64 binary'() {
    // Linux has no emulation to count on: a clear failure instead.
    const dir = taskWith(['linux-x64']);
    const { result, out } = captured(() => wrapper.binaryPath(dir, 'linux', 'arm64', fs));
    assert.strictEqual(result, null);
    assert.match(out, /^##vso\[task\.logissue type=error;\]git-relay has no binary for this agent \(linux-arm64\); this task ships: linux-x64\./m);
    assert.match(out, /^##vso\[task\.complete result=Failed;\]/m);
  },

  'a binary that cannot be made executable is run from the temporary directory'() {
    const dir = taskWith(['linux-x64']);
    const binary = path.join(dir, 'bin/linux-x64/git-relay');
    fs.chmodSync(binary, 0o644);
    const temp = tempDir('git-relay-agent-temp-');
    // A read-only task folder: chmod of the shipped binary is refused.
    const readOnly = Object.assign({}, fs, {
      chmodSync(file, mode) {
        if (file === binary) {
          const err = new Error(`EPERM: operation not permitted, chmod '${file}'`);
          err.code = 'EPERM';
          throw err;
        }
        return fs.chmodSync(file, mode);
      },
    });
    const { result, out } = captured(() => wrapper.executable(binary, { AGENT_TEMPDIRECTORY: temp }, readOnly));
    assert.strictEqual(path.dirname(result), temp);
    assert.strictEqual(fs.readFileSync(result, 'utf8'), fs.readFileSync(binary, 'utf8'));
    assert.strictEqual(fs.statSync(result).mode & 0o111, 0o111, 'the copy is executable');
    assert.strictEqual(fs.statSync(binary).mode & 0o111, 0, 'the original was left alone');
    assert.match(out, /^##\[debug\]cannot make .* executable \(EPERM/);
  },

  'a binary already executable is run where it is when chmod fails'() {
    const dir = taskWith(['linux-x64']);
    const binary = path.join(dir, 'bin/linux-x64/git-relay');
    fs.chmodSync(binary, 0o755);
    const refusing = Object.assign({}, fs, {
      chmodSync() {
        throw new Error('EROFS');
      },
    });
    assert.strictEqual(wrapper.executable(binary, { AGENT_TEMPDIRECTORY: os.tmpdir() }, refusing), binary);
  },

  'a chmod that works changes nothing else'() {
    const dir = taskWith(['linux-x64']);
    const binary = path.join(dir, 'bin/linux-x64/git-relay');
    assert.strictEqual(wrapper.executable(binary, { AGENT_TEMPDIRECTORY: os.tmpdir() }, fs), binary);
    assert.strictEqual(fs.statSync(binary).mode & 0o111, 0o111);
  },

  async 'a cancel on windows lets the binary stop on its own, then ends it'() {
    const proc = new events.EventEmitter();
    const kills = [];
    const child = { exitCode: null, signalCode: null, kill: (s) => kills.push(s === undefined ? 'terminate' : s) };
    wrapper.forwardCancel(child, 'win32', proc, 50);
    proc.emit('SIGINT');
    // The console's Ctrl+C reaches the binary itself: no TerminateProcess.
    assert.deepStrictEqual(kills, []);
    await new Promise((resolve) => setTimeout(resolve, 120));
    assert.deepStrictEqual(kills, ['terminate'], 'a binary still running after the grace period is ended');

    // A binary that stopped in time is left alone; Ctrl+Break counts too.
    const stopped = { exitCode: null, signalCode: null, kill: (s) => kills.push(s) };
    const proc2 = new events.EventEmitter();
    wrapper.forwardCancel(stopped, 'win32', proc2, 50);
    proc2.emit('SIGBREAK');
    stopped.exitCode = 0;
    await new Promise((resolve) => setTimeout(resolve, 120));
    assert.deepStrictEqual(kills, ['terminate']);
  },

  'a cancel on linux and macos is forwarded as the same signal'() {
    for (const platform of ['linux', 'darwin']) {
      const proc = new events.EventEmitter();
      const kills = [];
      wrapper.forwardCancel({ kill: (s) => kills.push(s) }, platform, proc, 50);
      proc.emit('SIGTERM');
      proc.emit('SIGINT');
      assert.deepStrictEqual(kills, ['SIGTERM', 'SIGINT']);
    }
  },
};

(async () => {
  let failed = 0;
  for (const [name, test] of Object.entries(cases)) {
    try {
      await test();
      console.log(`ok - ${name}`);
    } catch (err) {
      failed += 1;
      console.log(`not ok - ${name}\n${err.stack}`);
    }
  }
  for (const dir of made) {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log(`${Object.keys(cases).length - failed} passed, ${failed} failed`);
  process.exitCode = failed === 0 ? 0 : 1;
})();
