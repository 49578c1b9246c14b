// Which Python runs the PyMySQL tests. Debian's python3-pymysql installs into the system Python
// (/usr/bin/python3), while `python3` on PATH may be another interpreter (a pyenv shim here) that
// cannot import it. scripts/test-prerequisites.mjs applies the same rule when it checks for it.
import { spawnSync } from 'node:child_process';

const candidates = [process.env.EDGEGATE_TEST_PYTHON, '/usr/bin/python3', 'python3'].filter(
  (candidate): candidate is string => Boolean(candidate),
);

let chosen: string | undefined;

/** The first candidate Python that imports pymysql; throws with the fix when none does. */
export function pythonWithPymysql(): string {
  chosen ??= candidates.find(
    (python) => spawnSync(python, ['-c', 'import pymysql'], { stdio: 'ignore' }).status === 0,
  );
  if (chosen === undefined) {
    throw new Error(
      `none of ${candidates.join(', ')} imports pymysql; fix: apt-get install -y python3-pymysql ` +
        '(or set EDGEGATE_TEST_PYTHON to a Python that has it)',
    );
  }
  return chosen;
}
