"""The README's action reference is generated from the models and must not drift."""

from scripts.readme_actions import README, render


def test_readme_action_reference_is_current():
    text = README.read_text()
    assert "#### Create Kleer Agreement" in text and "`invoice_day`" in text
    assert render(text) == text, "run: python -m scripts.readme_actions"
