"""The emulated Avatarium assistant's rules, as pure functions (no server needed).

Conversation tests assert on these replies, so the rules documented in
docs/emulator-avatarium.md are pinned here word for word.
"""

from __future__ import annotations

import pytest

from avatarsync.emulator.avatarium import (
    assistant_reply,
    persona_name,
    split_chunks,
    system_topics,
    token_count,
)

SUPPORT = "You are Tommy from Acme.\nTopics: billing, return policy; shipping.\nBe brief."


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("You are a helpful assistant named Aria.", "Aria"),
        ("You are Tommy from Acme. You are Bob.", "Tommy"),
        ("you're Zed, a pirate", "Zed"),
        ("Be kind. Your friend is called Max.", "Max"),
        ("You are The Oracle, named Delphi.", "Delphi"),
        ("You are Aria's sidekick.", "Aria"),
        ("You are a helpful assistant.", "Kai"),
        ("", "Kai"),
    ],
)
def test_persona_name(prompt: str, expected: str) -> None:
    assert persona_name(prompt, "Kai") == expected


def test_topics_come_from_every_topics_line_in_order() -> None:
    prompt = "topics: pricing.\nTOPIC : a, , b ;c.\nnot Topics: x"
    assert system_topics(prompt) == ["pricing", "a", "b", "c"]
    assert system_topics(SUPPORT) == ["billing", "return policy", "shipping"]


@pytest.mark.parametrize(
    ("message", "reply"),
    [
        ("Hello!", "Hello! I'm Tommy. How can I help you today?"),
        ("hey there", "Hello! I'm Tommy. How can I help you today?"),
        ("Good morning, Tommy", "Hello! I'm Tommy. How can I help you today?"),
        ("Bye now", "Goodbye from Tommy! Thanks for the conversation."),
        ("see you later", "Goodbye from Tommy! Thanks for the conversation."),
        # A topic wins over a greeting; any non-stop word of a topic matches.
        (
            "Hi, a question about BILLING",
            "Tommy here. Happy to help with billing: what would you like to know?",
        ),
        (
            "What is your policy?",
            "Tommy here. Happy to help with return policy: what would you like to know?",
        ),
        ("  How   long\tdoes it take? ", "Tommy here. You said: How long does it take?"),
        # "and"/"the" are stop words: they do not match "return policy".
        ("the and", "Tommy here. You said: the and"),
        (
            "shipping or billing?",
            "Tommy here. Happy to help with billing: what would you like to know?",
        ),
    ],
)
def test_reply_rules(message: str, reply: str) -> None:
    assert assistant_reply(SUPPORT, "Aria", message) == reply


def test_reply_falls_back_to_the_avatar_name() -> None:
    assert assistant_reply("", "Nova", "ping?") == "Nova here. You said: ping?"


def test_chunks_concatenate_exactly() -> None:
    for text in ["Hello! I'm Aria. How can I help you today?", "one", "  lead  and trail  ", ""]:
        chunks = split_chunks(text)
        assert "".join(chunks) == text
    assert split_chunks("a b  c") == ["a ", "b  ", "c"]


def test_token_count_is_a_quarter_of_the_characters_rounded_up() -> None:
    assert [token_count(t) for t in ["", "abc", "abcd", "abcde"]] == [0, 1, 1, 2]


def test_the_documented_example() -> None:
    # The table in docs/emulator-avatarium.md, verbatim.
    prompt = "You are Tommy from Acme.\nTopics: billing, return policy, shipping"
    table = {
        "Hello!": "Hello! I'm Tommy. How can I help you today?",
        "What is your policy?": (
            "Tommy here. Happy to help with return policy: what would you like to know?"
        ),
        "bye": "Goodbye from Tommy! Thanks for the conversation.",
        "How   long?": "Tommy here. You said: How long?",
    }
    for message, reply in table.items():
        assert assistant_reply(prompt, "Aria", message) == reply
