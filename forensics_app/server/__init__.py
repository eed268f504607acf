"""``forensics-serve``: the scan engine behind a local HTTP API and a web page.

One detector, loaded once, scores every request through the core's
:class:`~forensics_app.core.session.ScanSession`, the same session the CLI and the GUI run.
"""
