"""Model preparation for the service, in Python (Debian's /usr/bin/python3 and its packages).

A package: run each tool as a module from the repository root, e.g.
    /usr/bin/python3 -m tools.export.export_clip CHECKPOINT OUT_DIR --vocab MERGES
"""
