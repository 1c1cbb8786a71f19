"""Templates: sandboxed, escaped for Telegram HTML, strict about placeholders and length."""

from __future__ import annotations

from pathlib import Path

import pytest

from care.core.config import CareConfig
from care.core.i18n import LOCALES
from care.core.templates import (
    MAX_VISIBLE_CHARS,
    PLACEHOLDERS,
    TemplateProblem,
    describe_placeholders,
    member_context,
    render_rule,
    render_text,
    visible_length,
)
from storage.models import Member

TEMPLATES = Path(__file__).resolve().parent.parent / "care" / "core" / "rule_templates"


def member(**values: object) -> Member:
    defaults: dict[str, object] = {
        "id": 7,
        "member_code": "AB23CD45",
        "name": "Li",
        "locale": "en",
        "tier_code": "silver",
        "points_balance": 120,
        "spend_12m_minor": 150_000,
        "timezone": "Asia/Shanghai",
    }
    defaults.update(values)
    return Member(**defaults)


def test_placeholders_fill_in_and_values_are_escaped() -> None:
    context = member_context(member(name="<b>Bob</b> & co"), CareConfig(shop_name="Tea House"))
    text = render_text("Hi {{ name }}, <b>{{ points }}</b> points at {{ shop }}", context)
    assert text == "Hi &lt;b&gt;Bob&lt;/b&gt; &amp; co, <b>120</b> points at Tea House"


def test_every_documented_placeholder_renders_in_both_locales() -> None:
    source = " ".join(f"{{{{ {name} }}}}" for name in PLACEHOLDERS)
    for locale in LOCALES:
        context = member_context(member(locale=locale), CareConfig())
        assert "{" not in render_text(source, context)
        assert len(describe_placeholders(locale)) == len(PLACEHOLDERS)
    assert "Silver" in render_text("{{ tier }}", member_context(member(), CareConfig()))
    zh = member_context(member(locale="zh"), CareConfig())
    assert render_text("{{ tier }} {{ spent_12m }}", zh) == "银卡会员 ¥1,500.00"


def test_a_member_without_a_name_is_greeted_kindly() -> None:
    assert render_text("Hi {{ name }}", member_context(member(name=None), CareConfig())) == (
        "Hi friend"
    )


def test_unknown_placeholder_is_a_problem_naming_it() -> None:
    with pytest.raises(TemplateProblem) as caught:
        render_text("Hi {{ nmae }}", member_context(member(), CareConfig()))
    assert caught.value.reason == "undefined"
    assert "nmae" in str(caught.value) and "name" in str(caught.value)
    assert "nmae" in caught.value.localized("zh") and "未知" in caught.value.localized("zh")


def test_syntax_error_names_the_line() -> None:
    with pytest.raises(TemplateProblem) as caught:
        render_text("line one\nHi {{ name ", {"name": "x"})
    assert caught.value.reason == "syntax"
    assert "line 2" in str(caught.value)


@pytest.mark.parametrize(
    "source",
    [
        "{{ name.__class__.__mro__ }}",
        "{{ ''.__class__.__subclasses__() }}",
        "{{ items.append(1) }}",
    ],
)
def test_the_sandbox_refuses_internals_and_mutation(source: str) -> None:
    with pytest.raises(TemplateProblem) as caught:
        render_text(source, {"name": "x", "items": []})
    assert caught.value.reason in {"forbidden", "undefined"}


def test_empty_result_is_a_problem() -> None:
    with pytest.raises(TemplateProblem) as caught:
        render_text("{% if false %}x{% endif %}  ", {})
    assert caught.value.reason == "empty"


def test_visible_length_limit_ignores_markup_and_counts_entities_once() -> None:
    ok = "<b>" + "&amp;" * MAX_VISIBLE_CHARS + "</b>"
    assert visible_length(ok) == MAX_VISIBLE_CHARS
    assert render_text(ok, {}) == ok
    with pytest.raises(TemplateProblem) as caught:
        render_text("{{ text }}", {"text": "x" * (MAX_VISIBLE_CHARS + 1)})
    assert caught.value.reason == "too_long"
    assert str(MAX_VISIBLE_CHARS + 1) in str(caught.value)
    # Telegram counts UTF-16 units: an emoji takes two.
    with pytest.raises(TemplateProblem):
        render_text("{{ text }}", {"text": "🎉" * (MAX_VISIBLE_CHARS // 2 + 1)})


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("<div>hi</div>", "bad_tag"),
        ("<b>hi", "unclosed_tag"),
        ("<b><i>hi</b></i>", "unclosed_tag"),
    ],
)
def test_only_telegram_html_passes(source: str, reason: str) -> None:
    with pytest.raises(TemplateProblem) as caught:
        render_text(source, {})
    assert caught.value.reason == reason
    assert "&lt;" in caught.value.localized("en")


def test_every_rule_template_exists_in_every_locale() -> None:
    names = {
        locale: {p.name for p in (TEMPLATES / locale).glob("*.html.j2")} for locale in LOCALES
    }
    assert names["zh"] == names["en"]
    assert len(names["en"]) >= 12


def test_rule_template_renders_in_the_members_language_with_escaping() -> None:
    coupon = {"code": "WELC0ME1", "offer": "10% off", "expires": "2026-04-01"}
    for locale, greeting in (("en", "Welcome"), ("zh", "欢迎")):
        context = member_context(member(locale=locale, name="<Ann>"), CareConfig(), coupon=coupon)
        text = render_rule("welcome", locale, context)
        assert greeting in text and "WELC0ME1" in text and "&lt;Ann&gt;" in text


def test_missing_rule_template_is_a_problem() -> None:
    with pytest.raises(TemplateProblem) as caught:
        render_rule("no_such_rule", "en", {})
    assert caught.value.reason == "missing"


def test_a_problem_nests_in_another_catalogue_text_without_double_escaping() -> None:
    from care.core.i18n import translator

    with pytest.raises(TemplateProblem) as caught:
        render_text("<div>x</div>", {})
    nested = translator("en")(
        "template_problem.syntax", line=1, detail=caught.value.localized("en")
    )
    assert "&lt;div&gt;" in nested and "&amp;lt;" not in nested
