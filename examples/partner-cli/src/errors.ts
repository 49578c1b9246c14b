// Expected failures: printed as one line without a stack trace, each with its exit status.

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Something went wrong that the user can fix (not logged in, the server refused). Exit 1. */
export class CliError extends Error {
  override readonly name: string = 'CliError';
}

/** The command line itself is wrong: an unknown command, a missing or malformed option. Exit 2. */
export class UsageError extends CliError {
  override readonly name = 'UsageError';
  /** The command whose `--help` explains what was wrong; the command list when unknown. */
  command: string | undefined;

  constructor(message: string, command?: string) {
    super(message);
    this.command = command;
  }
}

export const NOT_LOGGED_IN = 'you are not logged in: run partner-cli login';
export const ACCESS_REVOKED = 'access was revoked, run partner-cli login';
