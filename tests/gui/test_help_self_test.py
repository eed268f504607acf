"""Issue 37 (Low): ``forensics-app --help`` lists ``--self-test``."""

from forensics_app.gui.app import build_parser


def test_help_lists_self_test():
    text = build_parser().format_help()
    assert "--self-test" in text and "PASS/FAIL" in text
