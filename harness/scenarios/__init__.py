"""Scenarios: how a point loads its target, one module each, registered by kind in harness/config/serving.py
(``single``: one request at a time in this process; the serving kinds: an OpenAI-compatible server under load).
``point.py`` holds what every point does whatever its scenario."""
