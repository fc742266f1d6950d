"""The web console (`cutover console`): the Customer Import Tool's screens, runs in progress and
completed, dead letters with replay and discard, sign-in, audit and Prometheus metrics, served by
Starlette and uvicorn from server-rendered Jinja2 templates. Not to be confused with
``ops.console``, the terminal's rich console."""
