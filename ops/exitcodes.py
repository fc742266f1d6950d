"""Exit statuses of `cutover`, documented in docs/cli.md."""

OK = 0                 # every record committed or skipped
FAILURE = 1            # unexpected error (a bug, or infrastructure that never came up)
USAGE = 2              # bad command line (click's own status)
RECORDS_FAILED = 3     # the run finished, but some records are dead or blocked
REFUSED = 4            # the run was refused: a file could not be read, or configuration is wrong
INCOMPLETE = 5         # stopped waiting before the run finished (interrupted or timed out)
NOT_RECONCILED = 6     # the target does not hold what the source says (cutover reconcile lists it)
