"""Production scoring: load the model a stage holds, score batches, serve it over HTTP.

``loader`` resolves a reference through the registry (a local repository or a cached clone
of a git URL) and loads the model's bytes from the DVC cache or remote, md5-checked, with
the safe loader. ``scoring`` turns rows into the kind's results. ``server`` is the ASGI
service that follows a stage tag and swaps in a new holder once it has loaded and verified.
"""
