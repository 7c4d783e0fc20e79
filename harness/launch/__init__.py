"""Launch code: a point in a child process (``isolate``) and a scheduler's stop reaching it (``job_stop``)."""
