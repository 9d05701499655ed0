"""Process-wide pieces shared by the worker, the supervisor, the control protocol and the CLI.

State-dir paths (`paths`), reserved exit codes (`exits`), PID files and locks
(`pidfile`). This package sits below all of those processes so none of them has
to import another's package for them: the worker must not import the supervisor,
and control must not import either.
"""
