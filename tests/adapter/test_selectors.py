from __future__ import annotations

import pytest

from adapter.selectors import SelectorError, parse_selector

LABELS = {"app": "vllm", "model": "llama-3-8b", "tier": "gpu", "quantile": "0.95", "example.com/team": "ml"}


@pytest.mark.parametrize(("text", "matches"), [
    ("", True),
    ("app=vllm", True), ("app==vllm", True), ("app = vllm", True), ("app=web", False),
    ("app!=web", True), ("app!=vllm", False), ("missing!=x", True),
    ("app in (vllm,web)", True), ("app in (web)", False), ("app notin (web,db)", True), ("app notin (vllm)", False),
    ("missing notin (x)", True), ("missing in (x)", False),
    ("app", True), ("missing", False), ("!missing", True), ("!app", False),
    ("app=vllm,tier=gpu", True), ("app=vllm,tier=cpu", False), ("app=vllm, !missing, tier in (gpu)", True),
    ("quantile=0.95", True), ("example.com/team=ml", True), ("missing=", False), ("app in (vllm,)", True),
])
def test_parse_and_match(text: str, matches: bool) -> None:
    assert parse_selector(text).matches(LABELS) is matches


@pytest.mark.parametrize(("text", "needle"), [
    ("app in (", "unclosed"), ("app in ()", "at least one"), ("app in vllm", "expected '\\('"),
    ("=vllm", "label key"), ("app=vllm,", "trailing"), ("app vllm", "unknown operator"), ("a=b c=d", "expected ','"),
    ("app=-bad", "invalid label value"), ("Bad_Prefix/app=x", "invalid label key"), ("app=v@l", "invalid"),
    ("app=" + "x" * 64, "invalid label value"), ("!", "label key"), ("app in (a b)", "unexpected"),
])
def test_malformed_selectors_say_why(text: str, needle: str) -> None:
    with pytest.raises(SelectorError, match=needle):
        parse_selector(text)


@pytest.mark.parametrize(("text", "rendered"), [
    ("app=vllm", "app=vllm"), ("app notin (b,a)", "app notin (a,b)"), ("!x,y", "!x,y"), ("a!=b", "a!=b"),
])
def test_renders_canonically(text: str, rendered: str) -> None:
    assert str(parse_selector(text)) == rendered
